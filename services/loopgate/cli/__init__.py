"""The `loopgate` command: main.py is the app; a module per command group (api, ops, tune, export)."""
