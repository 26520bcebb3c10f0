"""Following the verdicts, wired: the rates state folds the verdicts read so far into the same rates as
the pure function, the reader skips what is not an outcome, and the Detector samples at the rate its
provider answers, per source and per model."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.detector.config import DetectionConfig, SamplingConfig, load_detection_config
from loopgate.detector.processing import Detector
from loopgate.detector.sampling import AdaptiveRates, AuditRateState, AuditVerdict, adaptive_audit_rates
from loopgate.detector.verdicts import AuditRateReader
from loopgate_schemas import topics
from loopgate_schemas.outcomes import Outcome, OutcomeData, outcome_id_for
from loopgate_tools.waiting import eventually_async

BASE = {topics.BIDS: 0.01, topics.TRAFFICKING: 0.02, topics.CONTENT: 0.05}
PARAMS = {"cap": 0.25, "weight": 0.1, "tolerance": 0.05, "saturation": 0.5}
T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVENTS = 20_000


def verdict(
    i: int, decision: str, *, model: str | None = "caption-gen-3", source: str = topics.CONTENT
) -> AuditVerdict:
    return AuditVerdict(T0 + timedelta(minutes=i), f"a-{i}", source, model, decision)


def test_the_state_gives_the_pure_functions_rates_whatever_the_batches_and_their_order() -> None:
    rng = random.Random(7)
    history = {
        f"o-{i}": verdict(i, rng.choice(["corrected", "confirmed", "false_positive", "dismissed"]), model=m, source=s)
        for i in range(600)
        for m, s in [rng.choice([("m1", topics.CONTENT), ("m2", topics.CONTENT), (None, topics.BIDS)])]
    }
    items = list(history.items())
    rng.shuffle(items)
    state = AuditRateState(BASE, **PARAMS)
    for start in range(0, len(items), 37):
        state.add(dict(items[start : start + 37]))
        state.add(dict(items[start : start + 5]))  # read twice: counts once
    assert state.rates == adaptive_audit_rates(history.values(), BASE, **PARAMS)
    assert len(state) == 600


def test_verdicts_in_time_order_are_folded_onto_the_rates_without_a_refold() -> None:
    state = AuditRateState(BASE, **PARAMS)
    history = {f"o-{i}": verdict(i, "corrected") for i in range(40)}
    for oid, v in history.items():
        assert state.add({oid: v})
    assert not state.add({"o-3": history["o-3"]})
    assert state.rates == adaptive_audit_rates(history.values(), BASE, **PARAMS)
    assert state.rates.by_model["caption-gen-3"] > 0.24


def content_event(i: int, model: str) -> bytes:
    """A confident, clean content.generated event: only audit sampling can raise anything on it."""
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"evt-{model}-{i}",
            "source": "contentgen/social",
            "type": "content.generated",
            "time": "2026-11-23T00:01:50.661Z",
            "subject": f"post-{i}",
            "data": {
                "content_id": f"post-{i}",
                "client_id": "contoso",
                "platform": "x",
                "caption": "New season, new favourites.",
                "model": model,
                "model_confidence": 0.97,
                "brand_voice_score": 0.9,
                "brand_safety_score": 0.9,
                "product_claims": [],
            },
        }
    )


def sampled_share(detector: Detector, model: str) -> float:
    hits = 0
    for i in range(EVENTS):
        outcome = detector.process(topics.CONTENT, content_event(i, model), topic=topics.CONTENT, partition=0, offset=i)
        assert outcome.rejected is None
        hits += outcome.sampled
    return hits / EVENTS


def test_the_detector_samples_a_corrected_model_at_its_adapted_rate_and_others_at_the_base() -> None:
    corrected = [verdict(i, "corrected", model="caption-gen-3") for i in range(5)]
    calm = [verdict(i, "false_positive", model=None) for i in range(5, 35)]  # the source's later samples were fine
    rates = adaptive_audit_rates(corrected + calm, BASE, **PARAMS)
    adapted = rates.by_model["caption-gen-3"]
    assert 0.15 < adapted < 0.25
    assert rates.by_source[topics.CONTENT] == 0.05
    detector = Detector(load_detection_config(), rates=lambda: rates)

    assert abs(sampled_share(detector, "caption-gen-3") - adapted) / adapted < 0.08
    assert abs(sampled_share(detector, "social-llm-2") - 0.05) / 0.05 < 0.1


def test_the_detector_without_verdicts_samples_at_the_configured_base_rate() -> None:
    empty = adaptive_audit_rates([], BASE, **PARAMS)
    share = sampled_share(Detector(load_detection_config(), rates=lambda: empty), "social-llm-2")
    assert abs(share - 0.05) / 0.05 < 0.1


def outcome(i: int, decision: str, *, model: str | None, kind: str = "audit_sample") -> bytes:
    data = OutcomeData(
        exception_id=f"exc-{i}",
        rule_id=kind,
        source=topics.CONTENT,
        decision=decision,  # type: ignore[arg-type]
        resolver="alice",
        reason="checked",
        resolved_at=T0 + timedelta(minutes=i),
        time_to_resolve_seconds=60,
        kind=kind if kind == "audit_sample" else "threshold_breach",  # type: ignore[arg-type]
        model=model,
    )
    return (
        Outcome(id=outcome_id_for(f"exc-{i}", 1), time=data.resolved_at, subject=f"exc-{i}", data=data)
        .model_dump_json()
        .encode()
    )


def records(values: list[bytes]) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord("exception-outcomes", 0, i, 0, 0, None, v, None, 0, len(v), []) for i, v in enumerate(values)
    ]


def gauge(source: str, model: str) -> float:
    return metrics.AUDIT_BASE_RATE.labels(source, model)._value.get()  # type: ignore[no-any-return]


def counted(result: str) -> float:
    return metrics.OUTCOMES_FOLDED.labels(result)._value.get()  # type: ignore[no-any-return]


def reader(model_labels: int = 20) -> AuditRateReader:
    sampling = SamplingConfig.model_validate({"adaptive": True, "model_labels": model_labels})
    return AuditRateReader(Settings(), sampling)


def test_the_reader_skips_bad_records_counts_them_and_folds_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loopgate.detector.verdicts")
    r = reader()
    skipped, other = counted("skipped"), counted("not_audit")
    bad = [b"not json", b"{}", orjson.dumps({"id": "x"}), b""]
    good = [outcome(i, "corrected", model="reader-model") for i in range(30)]
    r.fold(records(bad + good + [outcome(99, "confirmed", model=None, kind="bid_over_cap")]))

    assert counted("skipped") - skipped == 4
    assert counted("not_audit") - other == 1
    assert len(r.state) == 30
    assert gauge(topics.CONTENT, "reader-model") == r.current().by_model["reader-model"] > 0.2
    assert gauge(topics.BIDS, "any") == 0.01
    assert "audit base rate of content-pipeline.events (model reader-model) 0.0500 -> 0.2" in caplog.text


def test_models_beyond_the_labelled_ones_share_the_other_label() -> None:
    r = reader(model_labels=1)
    r.fold(records([outcome(i, "corrected", model=f"label-{i % 3}") for i in range(300, 360)]))
    current: AdaptiveRates = r.current()
    assert gauge(topics.CONTENT, "label-0") == current.by_model["label-0"]
    assert gauge(topics.CONTENT, "other") == max(current.by_model["label-1"], current.by_model["label-2"])


def test_adaptive_sampling_off_keeps_the_detector_at_the_base_rates() -> None:
    config = DetectionConfig()
    assert config.sampling.adaptive is False
    assert abs(sampled_share(Detector(config), "caption-gen-3") - 0.05) / 0.05 < 0.1


async def test_a_reader_that_cannot_reach_the_broker_keeps_the_rates_and_retries() -> None:
    sampling = SamplingConfig.model_validate({"adaptive": True})
    r = AuditRateReader(Settings(kafka_bootstrap="127.0.0.1:1"), sampling, retry_seconds=0.05)
    errors = metrics.OUTCOME_READER_ERRORS._value.get()
    task = asyncio.create_task(r.run())

    def failed_twice() -> None:
        assert metrics.OUTCOME_READER_ERRORS._value.get() - errors >= 2, "fewer than two read failures"

    await eventually_async(failed_twice, timeout=20)
    assert not task.done()  # failures are retried, never raised
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.OUTCOME_READER_ERRORS._value.get() - errors >= 2
    assert r.current().by_source == BASE
