"""Approval items (contract v2 kind `approval`): outputs a review policy holds until a person's release decision."""
