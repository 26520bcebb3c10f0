"""A simulated verdict history for `loopgate tune`: pacing_off firings (raised by the real rule on
budget.pacing events) and what operators decided, as training-data export rows.

Most clients' pacing_off firings are right (operators confirm about nine in ten, across the whole
range of ratios). One client (`TIGHT_CLIENT`) front-loads its spend on purpose: its firings below
a ratio of about 1.65 are mostly marked false positive, the few far above it confirmed, so its
threshold is too tight. One small client (`THIN_CLIENT`) has a handful of firings, nearly all
false positives: too few to act on.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.bids import check_budget_pacing
from loopgate_schemas.events import BudgetPacing
from loopgate_schemas.outcomes import Decision, outcome_id_for
from loopgate_schemas.training import TrainingRecord

TIGHT_CLIENT = "tailspin"
THIN_CLIENT = "wingtip"
TIGHT_BELOW = 1.65  # the tight client's firings below this ratio are its planned front-loading
START = datetime(2026, 11, 1, tzinfo=UTC)

# client -> (platforms, firings)
CLIENTS: dict[str, tuple[tuple[str, ...], int]] = {
    "northwind": (("ttd", "dv360"), 70),
    "contoso": (("meta",), 60),
    "fabrikam": (("google_ads", "amazon_dsp"), 60),
    TIGHT_CLIENT: (("ttd", "meta"), 80),
    THIN_CLIENT: (("dv360",), 8),
}


def _decision(rng: random.Random, client: str, ratio: float) -> Decision:
    if client == THIN_CLIENT:
        return Decision.FALSE_POSITIVE if rng.random() < 0.9 else Decision.CONFIRMED
    if client == TIGHT_CLIENT and ratio < TIGHT_BELOW:
        return Decision.FALSE_POSITIVE if rng.random() < 0.92 else Decision.CONFIRMED
    roll = rng.random()
    if roll < 0.84:
        return Decision.CONFIRMED
    if roll < 0.90:
        return Decision.CORRECTED
    return Decision.FALSE_POSITIVE if roll < 0.96 else Decision.DISMISSED


def _ratio(rng: random.Random, client: str, config: DetectionConfig) -> float:
    low = config.thresholds.pacing_max_ratio + 0.01
    if client in (TIGHT_CLIENT, THIN_CLIENT) and rng.random() < 0.8:
        return rng.uniform(low, TIGHT_BELOW - 0.02)
    return rng.uniform(low, 2.6)


def simulated_verdict_history(config: DetectionConfig, *, seed: int = 15) -> list[dict[str, Any]]:
    """Training-data export rows (TrainingRecord JSON), one per decided pacing_off exception."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    n = 0
    for client, (platforms, firings) in CLIENTS.items():
        for i in range(firings):
            n += 1
            platform = platforms[i % len(platforms)]
            expected = round(rng.uniform(200.0, 900.0), 2)
            ratio = _ratio(rng, client, config)
            day = date(2026, 11, 1) + timedelta(days=i % 25)
            event = {
                "specversion": "1.0",
                "id": f"sim-pacing-{n}",
                "source": "pacer/sim",
                "type": "budget.pacing",
                "time": f"{day.isoformat()}T12:00:00Z",
                "subject": f"cmp-{client}-{i % 7}",
                "data": {
                    "campaign_id": f"cmp-{client}-{i % 7}",
                    "client_id": client,
                    "platform": platform,
                    "date": day.isoformat(),
                    "daily_budget": round(expected * 2.4, 2),
                    "spend_to_date": round(expected * ratio, 2),
                    "expected_spend_to_date": expected,
                    "currency": "EUR",
                },
            }
            firings_of = check_budget_pacing(BudgetPacing.model_validate_json(json.dumps(event)), config)
            firing = next((f for f in firings_of if f.rule_id == "pacing_off"), None)
            if firing is None:  # rounding put it on the threshold: not a firing
                continue
            detected = START + timedelta(hours=n)
            exception_id = f"sim-exc-{n}"
            decision = _decision(rng, client, float(firing.observed["ratio"]))
            record = TrainingRecord(
                outcome_id=outcome_id_for(exception_id, 1),
                exception_id=exception_id,
                rule_id="pacing_off",
                source="bid-management.events",
                decision=decision,
                resolver="sim-operator",
                reason="planned front-loading" if decision is Decision.FALSE_POSITIVE else "over-pacing",
                resolved_at=detected + timedelta(minutes=30),
                time_to_resolve_seconds=1800.0,
                event_id=event["id"],  # type: ignore[arg-type]
                event_type="budget.pacing",
                subject=firing.subject,
                client_id=client,
                severity=config.severity_of("pacing_off"),
                observed=firing.observed,
                threshold=firing.threshold,
                expected=firing.expected,
                score=firing.score,
                detected_at=detected,
                platform=platform,
                event=event,
            )
            rows.append(record.model_dump(mode="json"))
    return rows


def write_verdict_history(path: str, config: DetectionConfig, *, seed: int = 15) -> int:
    """Write the simulated history as NDJSON (what `loopgate tune --verdicts` reads); rows written."""
    rows = simulated_verdict_history(config, seed=seed)
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return len(rows)
