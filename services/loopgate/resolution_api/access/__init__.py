"""Who may do what: bearer tokens, roles and scopes, and the one place a caller's scope is applied to queries."""
