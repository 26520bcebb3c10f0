"""Exceptions: records in (creation, intake, batch), their life (lifecycle, transitions,
bulk work) and reads (reading, store, cursor)."""
