"""The detector's /readyz (a Kubernetes readiness probe): 503 with the phase while it waits for
Kafka, 200 once its consumer holds upstream partitions and their tables are rebuilt, 503
`unassigned` for a worker beyond the partition count, and ready again when it takes the partitions
over. /healthz and /metrics answer throughout. Real broker, real detector processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate.common.kafka import ensure_topics
from loopgate.common.settings import Settings
from loopgate_tools.processes import ServiceProcess, free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def status(settings: Settings, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{settings.detector_metrics_port}{path}", timeout=2)
    except httpx.HTTPError:
        return None


def readyz(settings: Settings) -> tuple[int, dict[str, Any]] | None:
    response = status(settings, "/readyz")
    return None if response is None else (response.status_code, response.json())


def wait_for_readyz(
    settings: Settings, proc: ServiceProcess, code: int, reason: str | None, timeout: float
) -> dict[str, Any]:
    seen: list[tuple[int, dict[str, Any]] | None] = []

    def check() -> bool:
        assert proc.alive(), proc.log()[-3000:]
        seen.append(readyz(settings))
        last = seen[-1]
        return last is not None and last[0] == code and last[1].get("reason") == reason

    try:
        wait_until(check, timeout=timeout, what=f"/readyz {code} {reason}", interval=0.2)
    except TimeoutError:
        raise AssertionError(f"last /readyz answers {seen[-3:]}\n{proc.log()[-3000:]}") from None
    last = seen[-1]
    assert last is not None
    return last[1]


def detector(settings: Settings, tmp_path: Path, name: str) -> tuple[Settings, ServiceProcess]:
    own = settings.model_copy(update={"detector_metrics_port": free_port(), "detector_data_dir": tmp_path / name})
    return own, ServiceProcess.for_service("detector", own, tmp_path / name).start()


def test_detector_not_ready_while_kafka_does_not_answer(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_connect_timeout_seconds=60)
    own, proc = detector(settings, tmp_path, "no-kafka")
    try:
        body = wait_for_readyz(own, proc, 503, "waiting_for_kafka", timeout=30)
        assert body["status"] == "not ready"
        assert "LOOPGATE_KAFKA_BOOTSTRAP" in body["detail"] and settings.kafka_bootstrap in body["detail"]
        health = status(own, "/healthz")
        assert health is not None and health.status_code == 200 and health.json() == {"status": "ok"}
        scrape = status(own, "/metrics")
        assert scrape is not None and scrape.status_code == 200
        assert "loopgate_detector_assigned_partitions 0.0" in scrape.text
    finally:
        proc.stop()


def test_detector_ready_when_assigned_and_extra_worker_unassigned_until_takeover(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    # One partition per upstream topic: a second worker gets nothing to do, as a StatefulSet scaled
    # beyond the partition count would.
    settings = settings_factory(upstream_partitions=1)
    asyncio.run(ensure_topics(settings))
    first_settings, first = detector(settings, tmp_path, "first")
    second: ServiceProcess | None = None
    try:
        assert wait_for_readyz(first_settings, first, 200, None, timeout=120) == {"status": "ready"}
        scrape = status(first_settings, "/metrics")
        assert scrape is not None and "loopgate_detector_assigned_partitions 3.0" in scrape.text

        second_settings, second = detector(settings, tmp_path, "second")
        body = wait_for_readyz(second_settings, second, 503, "unassigned", timeout=120)
        assert "LOOPGATE_UPSTREAM_PARTITIONS=1" in body["detail"]
        wait_for_readyz(first_settings, first, 200, None, timeout=120)  # still the owner after the rebalance

        assert first.stop() == 0
        wait_for_readyz(second_settings, second, 200, None, timeout=120)  # took the partitions over
    finally:
        first.stop()
        if second is not None:
            second.stop()
