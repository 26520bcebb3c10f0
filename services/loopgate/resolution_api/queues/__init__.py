"""Queues: which team's queue an exception is routed to, decided once, at creation."""
