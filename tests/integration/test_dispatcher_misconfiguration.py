"""A misconfigured dispatcher (wrong, revoked or empty token; wrong API URL; nothing listening there)
delivers nothing, dead-letters nothing and commits nothing: it says so (an ERROR line naming the
setting, `loopgate_dispatcher_misconfigured{reason}`, 503 from /readyz) and delivers every record
once the cause is fixed, while it runs or after a restart. Real broker, real API and dispatcher
processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.access.tokens import hash_token
from loopgate.resolution_api.db.models import TokenRow
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from tests.fixtures.api import record
from tests.fixtures.kafka import produce
from tests.fixtures.services import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

RECORDS = 30
CANNOT_DELIVER = "cannot deliver to"
DELIVERING_AGAIN = "delivering again"


def publish(settings: Settings, n: int = RECORDS) -> list[dict[str, Any]]:
    """`n` valid records, keyed by their id (so spread over the topic's partitions)."""
    records = [record() for _ in range(n)]
    messages = [(r["exception_id"].encode(), orjson.dumps(r)) for r in records]
    asyncio.run(produce(settings.kafka_bootstrap, settings.exceptions_topic, messages))
    return records


def start_dispatcher(stack: Stack, log_dir: Path, **overrides: object) -> ServiceProcess:
    settings = stack.settings.model_copy(update={"api_token": stack.service_token, **overrides})
    proc = ServiceProcess.for_service("dispatcher", settings, log_dir).start()
    stack.processes[f"dispatcher-{len(stack.processes)}"] = proc  # stopped by the fixture
    return proc


def readyz(settings: Settings) -> tuple[int, dict[str, Any]] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{settings.dispatcher_metrics_port}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return response.status_code, response.json()


def metric(settings: Settings, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.dispatcher_metrics_port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def lag(settings: Settings) -> int:
    group = settings.group(settings.dispatcher_group)
    return asyncio.run(consumer_group_lag(settings.kafka_bootstrap, group, [settings.exceptions_topic]))


def dead_letters(settings: Settings) -> int:
    return len(asyncio.run(read_topic(settings.kafka_bootstrap, settings.exceptions_dlq_topic)))


def stored_ids(stack: Stack) -> set[str]:
    with stack.client() as http:
        return {item["id"] for item in http.get("/v1/exceptions", params={"limit": 200}).json()["items"]}


def wait_held(stack: Stack, proc: ServiceProcess, reason: str, *, failed: str | None, attempts: int = 3) -> None:
    """Until /readyz says `reason` and (unless the dispatcher never posts) it has tried `attempts` times."""
    s = stack.settings

    def held() -> bool:
        assert proc.alive(), proc.log()[-3000:]
        answer = readyz(s)
        if answer is None or answer[0] != 503 or answer[1].get("reason") != reason:
            return False
        return failed is None or metric(s, "loopgate_exceptions_delivery_failed_total", reason=failed) >= attempts

    wait_until(held, timeout=90, what=f"the dispatcher to hold its records ({reason})", interval=0.2)


def assert_held(stack: Stack, proc: ServiceProcess, reason: str, setting: str, *, api_up: bool = True) -> None:
    """Nothing delivered, dead-lettered or committed; the gauge, /readyz and one ERROR line say why."""
    s = stack.settings
    if api_up:
        assert stored_ids(stack) == set()
    assert dead_letters(s) == 0
    assert lag(s) == RECORDS
    assert metric(s, "loopgate_exceptions_delivered_total") == 0
    assert metric(s, "loopgate_dispatcher_misconfigured", reason=reason) == 1
    assert metric(s, "loopgate_dispatcher_misconfigured") == 1  # that reason only
    status, body = readyz(s) or (0, {})
    assert (status, body["status"], body["reason"]) == (503, "not ready", reason)
    assert setting in body["detail"]
    errors = [line for line in proc.log().splitlines() if CANNOT_DELIVER in line]
    assert len(errors) == 1, proc.log()[-3000:]
    line = json.loads(errors[0])  # the logs are JSON lines (LOOPGATE_LOG_FORMAT's default)
    assert line["level"] == "ERROR" and setting in line["message"] and f"({reason})" in line["message"]


def assert_everything_delivered(stack: Stack, records: list[dict[str, Any]], proc: ServiceProcess) -> None:
    s = stack.settings

    def settled() -> bool:
        assert proc.alive(), proc.log()[-3000:]
        return lag(s) == 0

    wait_until(settled, timeout=120, what="the dispatcher to deliver the backlog", interval=0.5)
    assert stored_ids(stack) == {r["exception_id"] for r in records}  # 0 lost
    assert dead_letters(s) == 0
    assert metric(s, "loopgate_exceptions_delivered_total", status="201") == RECORDS
    assert metric(s, "loopgate_dispatcher_misconfigured") == 0
    assert readyz(s) == (200, {"status": "ready"})


async def register_token(database_url: str, secret: str) -> None:
    """The token the dispatcher was configured with becomes valid (as an admin importing a secret
    handed out beforehand would make it)."""
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            session.add(
                TokenRow(
                    id=uuid.uuid4().hex,
                    name="dispatcher-late",
                    role="service",
                    token_hash=hash_token(secret),
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
    finally:
        await engine.dispose()


def test_a_wrong_token_holds_every_record_until_the_api_knows_it_then_all_are_delivered(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
) -> None:
    stack = stack_factory()
    stack.start("api")
    secret = f"lg_not_yet_{uuid.uuid4().hex}"
    dispatcher = start_dispatcher(stack, tmp_path / "run", api_token=secret)
    records = publish(stack.settings)
    # Long enough for the held batch to be given up and fetched again (10 probes at the 2 s cap).
    wait_held(stack, dispatcher, "unauthorized", failed="misconfigured", attempts=22)
    assert_held(stack, dispatcher, "unauthorized", "LOOPGATE_API_TOKEN")

    asyncio.run(register_token(stack.settings.database_url, secret))
    assert_everything_delivered(stack, records, dispatcher)
    resumed = [line for line in dispatcher.log().splitlines() if DELIVERING_AGAIN in line]
    assert len(resumed) == 1 and "unauthorized" in resumed[0]
    assert sum(CANNOT_DELIVER in line for line in dispatcher.log().splitlines()) == 1


@pytest.mark.parametrize(
    ("token", "reason", "failed"),
    [("lg_revoked_or_never_issued", "unauthorized", "misconfigured"), ("", "token_missing", None)],
    ids=["wrong-token", "empty-token"],
)
def test_a_wrong_or_empty_token_holds_every_record_and_a_restart_with_the_right_one_delivers_all(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
    token: str,
    reason: str,
    failed: str | None,
) -> None:
    stack = stack_factory()
    stack.start("api")
    wrong = start_dispatcher(stack, tmp_path / "wrong", api_token=token)
    records = publish(stack.settings)
    wait_held(stack, wrong, reason, failed=failed)
    assert_held(stack, wrong, reason, "LOOPGATE_API_TOKEN")
    assert wrong.stop() == 0

    right = start_dispatcher(stack, tmp_path / "right")
    assert_everything_delivered(stack, records, right)
    assert CANNOT_DELIVER not in right.log()


def test_nothing_listening_at_the_api_url_holds_every_record_until_the_api_starts_there(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
) -> None:
    stack = stack_factory()  # the API is not started yet: nothing listens at LOOPGATE_API_URL
    dispatcher = start_dispatcher(stack, tmp_path / "run")
    records = publish(stack.settings)
    wait_held(stack, dispatcher, "connection_refused", failed="unavailable")
    assert_held(stack, dispatcher, "connection_refused", "LOOPGATE_API_URL", api_up=False)

    stack.start("api")
    assert_everything_delivered(stack, records, dispatcher)
    assert sum(DELIVERING_AGAIN in line for line in dispatcher.log().splitlines()) == 1


@pytest.mark.parametrize("wrong_url", ["path", "port"])
def test_a_wrong_api_url_holds_every_record_and_a_restart_at_the_right_url_delivers_all(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
    wrong_url: str,
) -> None:
    stack = stack_factory()
    stack.start("api")
    if wrong_url == "path":  # the API answers 404: it has no route there
        url, reason, failed = f"{stack.api_url}/loopgate", "wrong_url", "misconfigured"
    else:
        url, reason, failed = f"http://127.0.0.1:{free_port()}", "connection_refused", "unavailable"
    wrong = start_dispatcher(stack, tmp_path / "wrong", api_url=url)
    records = publish(stack.settings)
    wait_held(stack, wrong, reason, failed=failed)
    assert_held(stack, wrong, reason, "LOOPGATE_API_URL")
    assert wrong.stop() == 0

    right = start_dispatcher(stack, tmp_path / "right")
    assert_everything_delivered(stack, records, right)


def test_an_idle_dispatcher_is_not_ready_with_a_wrong_token_and_ready_once_it_is_valid(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
) -> None:
    """Without a single record: the check at start and the checks while idle post an empty record
    (the API checks the token first: 401, then 422 once the token is valid), which stores nothing."""
    stack = stack_factory()
    stack.start("api")
    secret = f"lg_not_yet_{uuid.uuid4().hex}"
    dispatcher = start_dispatcher(stack, tmp_path / "run", api_token=secret)
    s = stack.settings
    wait_held(stack, dispatcher, "unauthorized", failed=None)
    assert metric(s, "loopgate_dispatcher_misconfigured", reason="unauthorized") == 1

    asyncio.run(register_token(s.database_url, secret))
    wait_until(
        lambda: readyz(s) == (200, {"status": "ready"}), timeout=60, what="the dispatcher to be ready", interval=0.2
    )
    assert metric(s, "loopgate_dispatcher_misconfigured") == 0
    assert stored_ids(stack) == set()
    records = publish(s)
    assert_everything_delivered(stack, records, dispatcher)


def test_a_token_file_written_after_the_start_is_picked_up_without_a_restart(
    stack_factory: Callable[..., Stack],
    tmp_path: Path,
) -> None:
    """Compose and Kubernetes mount the token's secret before anyone made the token: until the file
    holds one, the dispatcher holds every record and says which file it waits for."""
    stack = stack_factory()
    stack.start("api")
    token_file = tmp_path / "secrets" / "api-token"
    dispatcher = start_dispatcher(stack, tmp_path / "run", api_token="", api_token_file=token_file)
    records = publish(stack.settings)
    wait_held(stack, dispatcher, "token_missing", failed=None)
    assert_held(stack, dispatcher, "token_missing", "api_token_file")
    assert f"file {token_file} does not exist" in (readyz(stack.settings) or (0, {}))[1]["detail"]

    token_file.parent.mkdir()
    token_file.write_text(stack.service_token + "\n")  # a mounted secret's trailing newline is not the token's
    assert_everything_delivered(stack, records, dispatcher)
