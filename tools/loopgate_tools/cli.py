"""`loopgate-tools`: the simulator, the evaluator, the benchmark and the demo report."""

from __future__ import annotations

from typing import Annotated

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


@app.command("simulate-verdicts")
def simulate_verdicts(
    out: Annotated[str, typer.Option(help="NDJSON file to write (training-data export rows).")] = "verdicts.ndjson",
    seed: Annotated[int, typer.Option(help="Same seed, same history.")] = 15,
) -> None:
    """Write a simulated verdict history for `loopgate tune` (one client's pacing_off too tight)."""
    from loopgate.detector.config import load_detection_config
    from loopgate_tools.simulator.verdicts import write_verdict_history

    typer.echo(f"{write_verdict_history(out, load_detection_config(), seed=seed)} verdicts written to {out}")


@app.command("evaluate-suggestions")
def evaluate_suggestions(
    docs: Annotated[str, typer.Option(help="Where to write the report.")] = "docs/suggestions.md",
    streams: Annotated[int, typer.Option(min=1, max=1000, help="Streams per scenario.")] = 20,
    items: Annotated[int, typer.Option(min=1, max=100_000, help="Judged verdicts per stream.")] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same histories.")] = 26,
) -> None:
    """Accuracy and calibration of the suggested decisions on simulated verdict histories."""
    from pathlib import Path

    from loopgate_tools.suggestion_eval import write_report

    typer.echo(write_report(Path(docs), streams=streams, items=items, seed=seed), nl=False)


@app.command("settings-doc")
def settings_doc() -> None:
    """Regenerate the README's settings table from the settings class."""
    from loopgate_tools import settings_doc as doc

    typer.echo("README.md settings table " + ("updated" if doc.write() else "already up to date"))


if __name__ == "__main__":
    app()
