"""The detector's outcome reader: audit-sample verdicts on `exception-outcomes`, folded into the audit
base rates the Detector samples at (sampling.AuditRateState; docs/detection.md, "Following the verdicts").

No consumer group: every worker needs every verdict (a group would give each worker a share of the
partitions, and so different rates), and nothing is committed: at each start the reader assigns
itself every partition and reads from the beginning, so a worker's rates are those of the history
of outcomes it has read so far, whichever worker it is and however often it restarted.

The reader never stops detection: a record that is not an outcome is skipped and counted; a failure
of the reader itself (the broker down) is logged and counted, and it starts again where it was,
while the Detector goes on sampling at the rates it had.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from loopgate.common import metrics
from loopgate.common.kafka import consumer, topic_partitions
from loopgate.common.settings import Settings
from loopgate.detector.config import SamplingConfig
from loopgate.detector.sampling import AdaptiveRates, AuditRateState, AuditVerdict
from loopgate_schemas.exceptions import Kind
from loopgate_schemas.outcomes import Outcome

log = logging.getLogger(__name__)

ANY_MODEL = "any"  # the gauge's model label of a source's own rate
OTHER_MODELS = "other"  # the gauge's model label of the models beyond the labelled ones
AUDIT_RULE = "audit_sample"


def audit_verdict(value: bytes | None) -> tuple[str, AuditVerdict | None]:
    """(outcome id, its verdict) for an audit sample's outcome, (id, None) for any other outcome.
    Raises ValueError when the value is not an outcome (pydantic's ValidationError is one)."""
    outcome = Outcome.model_validate_json(value or b"")
    data = outcome.data
    if data.kind is not Kind.AUDIT_SAMPLE and data.rule_id != AUDIT_RULE:  # v1 outcomes have no kind
        return outcome.id, None
    return outcome.id, AuditVerdict(data.resolved_at, data.exception_id, data.source, data.model, data.decision.value)


class AuditRateReader:
    """Reads the outcomes, keeps the rates (`current`, the Detector's provider), the gauge and the log."""

    def __init__(self, settings: Settings, sampling: SamplingConfig, *, retry_seconds: float = 1.0) -> None:
        self.settings = settings
        self.topic = settings.outcomes_topic
        self.state = AuditRateState(
            sampling.base_rates(),
            cap=sampling.cap,
            weight=sampling.weight,
            tolerance=sampling.tolerance,
            saturation=sampling.saturation,
        )
        self.model_labels = sampling.model_labels
        self.retry_seconds = retry_seconds
        self.positions: dict[TopicPartition, int] = {}  # next offset per partition, kept across restarts
        self._labelled: list[str] = []  # models with a label of their own, in the order first read
        self._shown: dict[tuple[str, str], float] = {}
        self._publish()

    def current(self) -> AdaptiveRates:
        return self.state.rates

    def fold(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Fold one fetched batch: skipped records counted, the rates moved once for the batch."""
        verdicts: dict[str, AuditVerdict] = {}
        for record in records:
            try:
                outcome_id, verdict = audit_verdict(record.value)
            except (ValueError, ValidationError) as err:
                log.warning("outcome %s[%s]@%s skipped: %.300s", record.topic, record.partition, record.offset, err)
                metrics.OUTCOMES_FOLDED.labels("skipped").inc()
                continue
            if verdict is None:
                metrics.OUTCOMES_FOLDED.labels("not_audit").inc()
            elif verdict.source not in self.state.base_rates:
                metrics.OUTCOMES_FOLDED.labels("unknown_source").inc()
            else:
                metrics.OUTCOMES_FOLDED.labels("audit").inc()
                verdicts[outcome_id] = verdict
        if self.state.add(verdicts):
            self._publish()

    def _publish(self) -> None:
        """Set the gauge from the rates, and log each rate that moved."""
        rates = self.state.rates
        shown = {(source, ANY_MODEL): rate for source, rate in rates.by_source.items()}
        for model, rate in rates.by_model.items():
            source = self.state.model_source(model) or ""
            if model not in self._labelled and len(self._labelled) < self.model_labels:
                self._labelled.append(model)
            label = model if model in self._labelled else OTHER_MODELS
            shown[(source, label)] = max(rate, shown.get((source, label), 0.0))
        for (source, model), rate in shown.items():
            before = self._shown.get((source, model))
            if before is None or round(before, 4) != round(rate, 4):
                metrics.AUDIT_BASE_RATE.labels(source, model).set(rate)
                if len(self.state):  # not the base rates set at start
                    log.info(
                        "audit base rate of %s (model %s) %.4f -> %.4f after %d verdicts",
                        source,
                        model,
                        self.state.base_rates[source] if before is None else before,
                        rate,
                        len(self.state),
                    )
                self._shown[(source, model)] = rate

    async def run(self) -> None:
        """Read until cancelled; any failure is logged and the reader starts again."""
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outcome reader failed; detection goes on at the current rates, retrying")
                metrics.OUTCOME_READER_ERRORS.inc()
            await asyncio.sleep(self.retry_seconds)

    async def _read(self) -> None:
        partitions = await topic_partitions(self.settings, [self.topic])
        if not partitions:
            log.info("no %s topic yet; audit rates stay at the base", self.topic)
            return
        reader = consumer(self.settings, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        await reader.start()
        try:
            reader.assign(partitions)
            for tp in partitions:
                if tp in self.positions:
                    reader.seek(tp, self.positions[tp])
                else:
                    await reader.seek_to_beginning(tp)
            while True:
                batch = await reader.getmany(timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    self.positions[tp] = records[-1].offset + 1
                self.fold(r for records in batch.values() for r in records)
        finally:
            await reader.stop()
