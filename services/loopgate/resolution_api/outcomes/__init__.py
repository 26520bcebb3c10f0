"""Outcomes of decisions: the outbox relay to exception-outcomes, training records and export, verdict statistics."""
