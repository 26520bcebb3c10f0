"""`python -m loopgate.cli`: the `loopgate` command."""

from loopgate.cli.main import app

app()
