"""Silences: matchers that hold back notifications and escalation for a while."""
