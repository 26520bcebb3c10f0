"""Two operators resolve the same exception at the same moment: exactly one wins (200), the other
gets 409, and exactly one outcome is committed. On a real uvicorn server over TCP."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from loopgate.common.settings import Settings
from loopgate.resolution_api.access import tokens as api_tokens
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.app import create_app
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.http.deps import Services
from loopgate_tools.processes import free_port
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import record


@pytest.fixture
async def live(api_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services, dict[str, str]]]:
    port = free_port()
    app = create_app(api_settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:

        def started() -> bool:
            assert not task.done(), "uvicorn exited during startup"
            return bool(server.started)

        await eventually_async(started, timeout=30, interval=0.02, what="uvicorn", retrying=())
        services: Services = app.state.services
        headers = {}
        async with services.db.write() as session, session.begin():
            for role in (Role.SERVICE, Role.OPERATOR):
                _, secret = await api_tokens.create_token(
                    session=session, name=f"{role.value}-live", role=role, now=dt.datetime.now(dt.UTC)
                )
                headers[role.value] = f"Bearer {secret}"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, services, headers
    finally:
        server.should_exit = True
        await task


async def test_two_concurrent_resolves_give_one_200_and_one_409(
    live: tuple[httpx.AsyncClient, Services, dict[str, str]],
) -> None:
    client, services, tokens = live
    for _ in range(5):
        sent = record()
        created = await client.post("/v1/exceptions", json=sent, headers={"Authorization": tokens["service"]})
        assert created.status_code == 201
        url = f"/v1/exceptions/{sent['exception_id']}/resolve"
        op = {"Authorization": tokens["operator"]}

        first, second = await asyncio.gather(
            client.post(url, json={"decision": "confirmed"}, headers=op),
            client.post(url, json={"decision": "dismissed", "reason": "duplicate"}, headers=op),
        )

        assert sorted([first.status_code, second.status_code]) == [200, 409]
        loser = first if first.status_code == 409 else second
        assert loser.json()["detail"].startswith("cannot resolve: exception is resolved")
        async with services.db.read() as session:
            assert len(await store.outbox_for(session=session, exception_id=sent["exception_id"])) == 1


async def test_many_concurrent_resolves_have_exactly_one_winner(
    live: tuple[httpx.AsyncClient, Services, dict[str, str]],
) -> None:
    client, _, tokens = live
    sent = record()
    await client.post("/v1/exceptions", json=sent, headers={"Authorization": tokens["service"]})

    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/exceptions/{sent['exception_id']}/resolve",
                json={"decision": "confirmed"},
                headers={"Authorization": tokens["operator"]},
            )
            for _ in range(10)
        )
    )

    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
