"""Several API replicas on one PostgreSQL: records spread over two API processes (a dispatcher
each, one consumer group), one replica killed with SIGKILL mid-storm and started again; every
exception is stored once, and every outcome published once though both replicas' relays run.
SQLite stays one process: a second API on the same file is refused at start, saying why."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import SecondWriter
from loopgate.resolution_api.db.models import ExceptionEventRow
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, ApiFactory, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.kafka import produce
from tests.fixtures.services import Stack

FINGERPRINTS = 300
RECORDS = 3_000


def storm() -> list[dict[str, Any]]:
    """RECORDS records over FINGERPRINTS fingerprints of two clients, a tenth of them sent twice."""
    rng = random.Random(14)
    records = [
        record(
            exception_id=f"storm-{n}",
            fingerprint=f"bid_over_cap:li-{n % FINGERPRINTS}",
            client_id=("north", "south")[n % FINGERPRINTS % 2],
        )
        for n in range(RECORDS)
    ]
    return records + rng.sample(records, RECORDS // 10)


def api_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def any_stored(url: str, token: str) -> bool:
    headers = {"authorization": f"Bearer {token}"}
    return bool(httpx.get(f"{url}/v1/exceptions", params={"limit": 1}, headers=headers, timeout=5).json()["items"])


def stored(url: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=10) as http:
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/exceptions", params=params).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


@pytest.mark.kafka
@pytest.mark.e2e
@pytest.mark.postgres
def test_two_replicas_store_each_exception_once_and_publish_each_outcome_once_though_one_is_killed(
    stack_factory: Callable[..., Stack], fresh_postgres_url: str, tmp_path: Path
) -> None:
    stack = stack_factory(database_url=fresh_postgres_url, outbox_interval_seconds=0.2, sweep_interval_seconds=0.5)
    s = stack.settings
    first = stack.start("api")
    second_settings = s.model_copy(update={"api_port": free_port()})
    second_url = f"http://127.0.0.1:{second_settings.api_port}"
    second = stack.processes["api-2"] = ServiceProcess.for_service("api", second_settings, tmp_path / "2").start()
    wait_until(lambda: api_up(second_url), timeout=60, what="the second replica")
    for n, url in enumerate((s.api_url, second_url)):
        dispatcher = s.model_copy(
            update={"api_url": url, "api_token": stack.service_token, "dispatcher_metrics_port": free_port()}
        )
        stack.processes[f"dispatcher-{n}"] = ServiceProcess.for_service("dispatcher", dispatcher, tmp_path / str(n))
        stack.processes[f"dispatcher-{n}"].start()

    records = storm()
    messages = [(r["exception_id"].encode(), orjson.dumps(r)) for r in records]
    asyncio.run(produce(s.kafka_bootstrap, s.exceptions_topic, messages))
    wait_until(lambda: any_stored(s.api_url, stack.operator_token), timeout=60, what="the storm", interval=0.05)
    first.kill()  # SIGKILL mid-storm: its open transactions and held batches go with it
    first = stack.start("api")

    def settled() -> bool:
        assert second.alive(), second.log()[-3000:]
        group = s.group(s.dispatcher_group)
        return asyncio.run(consumer_group_lag(s.kafka_bootstrap, group, [s.exceptions_topic])) == 0

    wait_until(settled, timeout=180, what="both dispatchers to deliver everything", interval=0.5)
    exceptions = stored(s.api_url, stack.operator_token)
    assert len(exceptions) == FINGERPRINTS
    assert len({e["fingerprint"] for e in exceptions}) == FINGERPRINTS
    assert sum(e["occurrences"] for e in exceptions) == RECORDS  # each record counted once

    for client, url in (("north", s.api_url), ("south", second_url)):  # each replica resolves half
        response = httpx.post(
            f"{url}/v1/exceptions/bulk",
            json={"action": "resolve", "filter": {"client_id": client}, "decision": "confirmed"},
            headers={"authorization": f"Bearer {stack.operator_token}"},
            timeout=60,
        )
        assert response.json()["changed"] == FINGERPRINTS // 2, response.text

    def outcomes() -> list[str]:
        return [orjson.loads(m.value)["id"] for m in asyncio.run(read_topic(s.kafka_bootstrap, s.outcomes_topic))]

    wait_until(lambda: len(outcomes()) >= FINGERPRINTS, timeout=120, what="every outcome", interval=0.5)
    asyncio.run(asyncio.sleep(2))  # both relays run every 0.2 s: a doubled outcome would show by now
    published = outcomes()
    assert len(published) == len(set(published)) == FINGERPRINTS


async def test_a_second_api_on_one_sqlite_file_is_refused_at_start(api_factory: ApiFactory, tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}", kafka_bootstrap=UNREACHABLE_BOOTSTRAP
    )
    async with api_factory(settings):
        with pytest.raises(SecondWriter, match=r"SQLite takes one API process.*PostgreSQL"):
            async with api_factory(settings):
                pass
    async with api_factory(settings):  # the first one stopped: the file is free again
        pass


@pytest.mark.postgres
async def test_two_replicas_sweeping_at_once_take_each_sla_action_once(
    api_factory: ApiFactory, fresh_postgres_url: str
) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC))
    settings = Settings(
        database_url=fresh_postgres_url, kafka_bootstrap=UNREACHABLE_BOOTSTRAP, sweep_interval_seconds=3600
    )
    async with api_factory(settings, clock) as one, api_factory(settings, clock) as other:
        for _ in range(20):
            await one.create(severity="critical", detected_at=clock().isoformat())
        clock.advance(3 * 3600)  # past critical's ack and resolve deadlines
        swept = await asyncio.gather(one.services.sweeper.sweep(), other.services.sweeper.sweep())
        assert sum(escalated for _, escalated in swept) == 20
        async with one.services.db.read() as session:
            breaches = sa.select(sa.func.count()).where(ExceptionEventRow.action == "sla_breach")
            assert (await session.execute(breaches)).scalar_one() == 20
