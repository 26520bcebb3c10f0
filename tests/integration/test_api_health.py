"""/healthz, /readyz and /metrics (Prometheus text) of the resolution API."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.api import Api


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_healthz_answers_ok(api: Api) -> None:
    response = await api.http.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_ready_when_the_database_answers(api: Api) -> None:
    response = await api.http.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready", "degraded": []})


async def test_readyz_is_503_when_the_database_does_not_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreachable() -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(api.services.db, "ping", unreachable)

    response = await api.http.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"detail": "database unreachable: OSError"}


async def test_metrics_count_unresolved_exceptions_per_severity_and_status(api: Api) -> None:
    high = await api.create(severity="high")
    await api.create(severity="high")
    critical = await api.create(severity="critical")
    await api.act(high["id"], "claim")
    await api.act(critical["id"], "resolve", {"decision": "confirmed"})
    await api.services.sweeper.sweep()  # the sweeper's pass refreshes the gauges

    response = await api.http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    gauge = _samples(response.text, "loopgate_open_exceptions")
    assert gauge[(("severity", "high"), ("status", "open"))] == 1
    assert gauge[(("severity", "high"), ("status", "claimed"))] == 1
    assert gauge[(("severity", "critical"), ("status", "open"))] == 0
    assert _samples(response.text, "loopgate_outbox_pending")[()] == 1  # Kafka is unreachable here


async def test_metrics_answer_from_memory_without_asking_the_database(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.create(severity="low")
    await api.services.sweeper.sweep()

    def no_database() -> None:
        raise AssertionError("/metrics asked the database")

    monkeypatch.setattr(api.services.db, "read", no_database)
    monkeypatch.setattr(api.services.db, "write", no_database)
    scrapes = [await api.http.get("/metrics") for _ in range(3)]

    assert [r.status_code for r in scrapes] == [200, 200, 200]
    assert _samples(scrapes[-1].text, "loopgate_open_exceptions")[(("severity", "low"), ("status", "open"))] == 1
