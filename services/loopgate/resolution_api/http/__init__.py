"""The HTTP edge of the resolution API: the door's limits, error answers, authentication,
injected services, conditional requests."""
