"""`loopgate-tools`: the simulator, the evaluator, the benchmark and the demo report."""

from __future__ import annotations

import typer

from loopgate_tools.bench.report import bench
from loopgate_tools.demo import demo_report
from loopgate_tools.evaluation import evaluate
from loopgate_tools.simulator.cli import simulate

app = typer.Typer(
    help="Tools around Loopgate: simulate traffic, evaluate detection, benchmark, report a demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(simulate)
app.command()(evaluate)
app.command()(bench)
app.command("demo-report")(demo_report)


@app.command("settings-doc")
def settings_doc() -> None:
    """Regenerate the README's settings table from the settings class."""
    from loopgate_tools import settings_doc as doc

    typer.echo("README.md settings table " + ("updated" if doc.write() else "already up to date"))


if __name__ == "__main__":
    app()
