"""Telling on-call (issue 16): receivers per queue (config.py), the events committed with each
change (store.py), what each receiver is sent (payloads.py), the relay that sends it (relay.py)
and escalation levels driven by the sweeper (escalation.py)."""
