"""Following the verdicts on the real broker: outcomes where operators corrected most audit samples of
one model raise the running detector's audit base rate for that model; the rest stay at their base."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loopgate.common.kafka import ensure_topics
from loopgate.common.settings import Settings
from loopgate_schemas import topics
from loopgate_schemas.outcomes import Decision, Outcome, OutcomeData, outcome_id_for
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from tests.chaos.harness import scrape, total
from tests.fixtures.kafka import produce

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 11, 20, tzinfo=UTC)
GAUGE = "loopgate_audit_base_rate"


def audit_outcome(i: int, source: str, model: str | None, decision: Decision) -> tuple[bytes, bytes]:
    exception_id = f"exc-{i}"
    data = OutcomeData(
        exception_id=exception_id,
        rule_id="audit_sample",
        source=source,
        decision=decision,
        resolver="alice",
        reason="audited",
        resolved_at=T0 + timedelta(seconds=i),
        time_to_resolve_seconds=30,
        kind="audit_sample",  # type: ignore[arg-type]
        model=model,
    )
    outcome = Outcome(id=outcome_id_for(exception_id, 1), time=data.resolved_at, subject=exception_id, data=data)
    return exception_id.encode(), outcome.model_dump_json().encode()


def test_corrected_audit_samples_of_one_model_raise_its_rate_and_leave_the_rest(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "detection.toml"
    config.write_text("[sampling]\nadaptive = true\ncap = 0.25\n")
    settings = settings_factory(detection_config=config, detector_metrics_port=free_port())
    asyncio.run(ensure_topics(settings))
    port = settings.detector_metrics_port
    detector = ServiceProcess.for_service("detector", settings, tmp_path).start()
    try:

        def gauge(source: str, model: str) -> float:
            assert detector.alive(), detector.log()[-3000:]
            try:
                return total(scrape(port), GAUGE, source=source, model=model)
            except Exception:  # metrics not served yet
                return -1.0

        wait_until(lambda: gauge(topics.CONTENT, "any") == 0.05, timeout=90, what="the detector's audit rates")
        wrong = [Decision.CORRECTED, Decision.CONFIRMED, Decision.CORRECTED]
        messages = [
            audit_outcome(i, topics.CONTENT, "caption-gen-3", wrong[i % 3] if i % 10 else Decision.FALSE_POSITIVE)
            for i in range(40)
        ]
        messages += [audit_outcome(100 + i, topics.CONTENT, "copy-ok", Decision.FALSE_POSITIVE) for i in range(40)]
        messages += [audit_outcome(200 + i, topics.BIDS, None, Decision.DISMISSED) for i in range(40)]
        messages.append((b"garbage", b"{not an outcome"))
        asyncio.run(produce(settings, settings.outcomes_topic, messages))

        wait_until(
            lambda: gauge(topics.CONTENT, "caption-gen-3") > 0.05 and gauge(topics.CONTENT, "copy-ok") >= 0,
            timeout=60,
            what="the corrected model's audit rate to rise",
            interval=0.5,
        )
        wait_until(
            lambda: total(scrape(port), "loopgate_detector_outcomes_read_total") >= len(messages),
            timeout=30,
            what="every outcome read",
            interval=0.5,
        )
        samples = scrape(port)
        assert 0.2 < total(samples, GAUGE, source=topics.CONTENT, model="caption-gen-3") <= 0.25
        assert total(samples, GAUGE, source=topics.CONTENT, model="copy-ok") == 0.05
        assert total(samples, GAUGE, source=topics.BIDS, model="any") == 0.01
        assert total(samples, GAUGE, source=topics.TRAFFICKING, model="any") == 0.02
        assert total(samples, "loopgate_detector_outcomes_read_total", result="skipped") == 1
        assert total(samples, "loopgate_detector_outcomes_read_total", result="audit") == 120
        assert detector.alive()
    finally:
        assert detector.stop() == 0
