"""When a detector is ready to be sent traffic, for `/readyz` on its status port (a Kubernetes
readiness probe, a compose health check).

Ready means: Kafka answered, the consumer is in its group with at least one upstream partition
assigned, and the baseline tables of those partitions are rebuilt from their changelogs (faust
resumes the flow only once recovery is done). Otherwise 503 with the phase as `reason`:
`waiting_for_kafka`, `creating_topics`, `joining` (worker starting, no assignment yet),
`rebalancing`, `recovering` (tables being rebuilt), `unassigned` (in the group but given no
upstream partition: more detectors than partitions).

Read from the status server's own thread: only plain attributes and faust's flags are read.
"""

from __future__ import annotations

from typing import Any

from loopgate.common.status_server import NotReady


class DetectorReadiness:
    def __init__(self, kafka_bootstrap: str, upstream_topics: frozenset[str], partitions: int) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        self.upstream_topics = upstream_topics
        self.partitions = partitions
        self.phase = "waiting_for_kafka"  # then creating_topics, then worker (faust's state decides)
        self.assigned: int | None = None  # upstream partitions of the last assignment; None before one
        self.app: Any = None  # the faust app, once its worker starts

    def on_assigned(self, assigned: Any) -> None:
        self.assigned = sum(1 for tp in assigned if tp.topic in self.upstream_topics)

    def on_revoked(self) -> None:
        self.assigned = 0

    def __call__(self) -> NotReady | None:
        if self.phase == "waiting_for_kafka":
            return NotReady(
                "waiting_for_kafka",
                f"waiting for Kafka at {self.kafka_bootstrap}; check LOOPGATE_KAFKA_BOOTSTRAP and the broker",
            )
        if self.phase == "creating_topics":
            return NotReady("creating_topics", "creating the tables' changelog topics")
        app = self.app
        if app is None or self.assigned is None:
            return NotReady("joining", "the worker is starting and joining the consumer group")
        if app.rebalancing:
            return NotReady("rebalancing", "the consumer group is rebalancing")
        if self.assigned == 0:
            return NotReady(
                "unassigned",
                "in the consumer group but assigned no upstream partition: run at most one detector per "
                f"partition (LOOPGATE_UPSTREAM_PARTITIONS={self.partitions})",
            )
        recovery = app.tables.recovery
        if recovery.in_recovery or not app.flow_control.is_active():
            remaining = recovery.active_remaining_total() if recovery.in_recovery else 0
            return NotReady(
                "recovering",
                f"rebuilding the baseline tables from their changelogs ({remaining} records to go)",
            )
        return None
