"""Loopgate: detector, dispatcher and resolution API, with the tools around them."""
