"""`loopgate-tools demo-report`: what the running stack did, then one resolution through the HTTP API
and its outcome read back from `exception-outcomes` (used by `make demo`). Exits 1 when the loop did not
close: nothing to resolve, the resolution refused, or no outcome on the topic."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer
from prometheus_client.parser import text_string_to_metric_families

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.settings import Settings, get_settings

SEVERITY_ORDER = ["critical", "high", "medium", "low", "info"]


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of every metric at a Prometheus endpoint, by sample name."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def wait_caught_up(settings: Settings, timeout: float = 180) -> bool:
    async def lag() -> int:
        upstream = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]
        a = await consumer_group_lag(settings, settings.group(settings.detector_app_id), upstream)
        b = await consumer_group_lag(settings, settings.group(settings.dispatcher_group), [settings.exceptions_topic])
        return a + b

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(lag()) == 0:
            return True
        time.sleep(1)
    return False


def list_all(http: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200, **filters}
    while True:
        page = http.get("/v1/exceptions", params=params)
        page.raise_for_status()
        body = page.json()
        items += body["items"]
        if not body.get("next_cursor"):
            return items
        params["cursor"] = body["next_cursor"]


def table(title: str, rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> None:
    typer.echo(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    typer.echo("  " + line.format(*headers))
    for row in rows:
        typer.echo("  " + line.format(*row))


def demo_report(
    operator_token: str = typer.Option(..., help="an operator token for the API"),
    ground_truth: Path | None = typer.Option(None, help="the simulator's ground-truth file"),
) -> None:
    """Summarise the running stack, resolve one exception over HTTP and read its outcome back."""
    settings = get_settings()
    typer.echo("waiting for the detector and the dispatcher to catch up ...")
    if not wait_caught_up(settings):
        typer.echo("  (still lagging after 180 s; showing what is there)")

    detector = scrape(f"http://127.0.0.1:{settings.detector_metrics_port}/metrics")
    consumed: Counter[tuple[str, str]] = Counter()
    for labels, value in detector.get("loopgate_events_consumed_total", []):
        consumed[(labels["topic"], labels["type"])] += int(value)
    table(
        "Events processed per source",
        sorted((t, ty, n) for (t, ty), n in consumed.items()),
        ("topic", "type", "events"),
    )

    dead: Counter[tuple[str, str]] = Counter()
    for labels, value in detector.get("loopgate_dlq_messages_total", []):
        dead[(labels["topic"], labels["reason"])] += int(value)
    table(
        "Dead-lettered to events.dlq (not a valid event of their topic)",
        sorted((t, r, n) for (t, r), n in dead.items()) or [("-", "-", 0)],
        ("topic", "reason", "messages"),
    )

    raised: Counter[str] = Counter()
    for labels, value in detector.get("loopgate_exceptions_raised_total", []):
        raised[labels["rule"]] += int(value)
    injected: Counter[str] = Counter()
    if ground_truth and ground_truth.exists():
        for line in ground_truth.read_text().splitlines():
            for rule in json.loads(line).get("expected_rules", []):
                injected[rule] += 1
    table(
        "Exceptions raised per rule (detector) vs injected (simulator ground truth)",
        sorted(((r, raised[r], injected.get(r, "-")) for r in raised | injected), key=lambda x: -int(x[1])),
        ("rule", "raised", "injected"),
    )

    with httpx.Client(
        base_url=settings.api_url, headers={"authorization": f"Bearer {operator_token}"}, timeout=10
    ) as http:
        open_items = list_all(http, status="open")
        by_rule = Counter((e["severity"], e["rule_id"]) for e in open_items)
        table(
            f"Open in the API: {len(open_items)} exceptions "
            f"({sum(e['occurrences'] for e in open_items)} firings grouped by rule and subject)",
            sorted(((s, r, n) for (s, r), n in by_rule.items()), key=lambda x: SEVERITY_ORDER.index(x[0])),
            ("severity", "rule", "open"),
        )
        if not open_items:
            typer.echo("\ndemo: nothing open to resolve: the loop did not run", err=True)
            raise typer.Exit(1)
        target = min(open_items, key=lambda e: SEVERITY_ORDER.index(e["severity"]))
        typer.echo(f"\nResolving {target['id']} ({target['severity']}, {target['rule_id']}): {target['summary']}")
        body: dict[str, Any] = {"decision": "confirmed", "reason": "demo: checked with the account team"}
        if target["rule_id"] == "bid_over_cap":
            cap = (target.get("threshold") or {}).get("max_bid_cpm")
            bid = (target.get("observed") or {}).get("bid_cpm")
            body = {
                "decision": "corrected",
                "reason": "demo: bid set back to the cap",
                "correction": {"bid_cpm": {"before": bid, "after": cap}},
            }
        answer = http.post(f"/v1/exceptions/{target['id']}/resolve", json=body)
        typer.echo(f"  POST /v1/exceptions/{target['id']}/resolve -> {answer.status_code}")
        if answer.status_code != 200:
            typer.echo(f"demo: the resolution was refused: {answer.text}", err=True)
            raise typer.Exit(1)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = asyncio.run(read_topic(settings, settings.outcomes_topic))
        mine = [r for r in records if r.key == target["id"].encode()]
        if mine:
            typer.echo(
                f"\nOutcome read back from {settings.outcomes_topic} "
                f"(partition {mine[-1].partition}, offset {mine[-1].offset}):"
            )
            typer.echo(orjson.dumps(orjson.loads(mine[-1].value or b"null"), option=orjson.OPT_INDENT_2).decode())
            return
        time.sleep(0.5)
    typer.echo(f"demo: no outcome on {settings.outcomes_topic} after 30 s", err=True)
    raise typer.Exit(1)
