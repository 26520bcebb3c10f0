"""Property-based: schemathesis generates requests from the app's own OpenAPI schema (valid and
invalid ones) against a real uvicorn server, as admin; no answer may be a 5xx and every answer must
match the schema (status code, content type, body, headers). Bounded: few examples per operation."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from loopgate.common.settings import Settings
from loopgate.resolution_api.access import tokens as api_tokens
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.app import create_app
from loopgate.resolution_api.db.engine import Database
from loopgate_tools.processes import free_port
from loopgate_tools.waiting import eventually
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP
from tests.fixtures.postgres import PostgresServer

schema = schemathesis.openapi.from_dict(create_app().openapi())
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    admin_token: str


async def _prepare(url: str) -> str:
    db = Database(url)
    try:
        await db.migrate()
        async with db.write() as session, session.begin():
            _, secret = await api_tokens.create_token(
                session=session, name="fuzzer", role=Role.ADMIN, now=dt.datetime.now(dt.UTC)
            )
        return secret
    finally:
        await db.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The app on uvicorn in a thread of its own (schemathesis calls it synchronously)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'api.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url(asyncio.run(server.create_database()))
    token = asyncio.run(_prepare(url))
    port = free_port()
    app = create_app(Settings(database_url=url, kafka_bootstrap=UNREACHABLE_BOOTSTRAP, sweep_interval_seconds=3600))
    server_ = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server_.run, name="fuzzed-api", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn exited"
        return bool(server_.started)

    eventually(started, timeout=30, interval=0.02, what="uvicorn", retrying=())
    try:
        yield LiveApi(base_url=f"http://127.0.0.1:{port}", admin_token=token)
    finally:
        server_.should_exit = True
        thread.join(30)


@pytest.mark.timeout(300)
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=dt.timedelta(seconds=5),
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_5xx_and_every_response_conforms_to_the_schema(case: Case, live_api: LiveApi) -> None:
    case.call_and_validate(
        base_url=live_api.base_url,
        headers={"Authorization": f"Bearer {live_api.admin_token}"},
        checks=CHECKS,
        timeout=10,
    )
