"""One bad row affects that row alone (issue 23 item 2) on the console's pages and in the training
export: a stored exception that cannot be rendered or exported (a date that overflows, a value no
longer of its type) is shown or set aside with its id and reason, counted in a metric, and the
rest of the page or stream goes on. Both backends."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator

import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionRow
from tests.fixtures.api import Api, ApiFactory

FAR = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)


@pytest.fixture
async def console(api_factory: ApiFactory, api_settings: Settings) -> AsyncIterator[Api]:
    async with api_factory(api_settings.model_copy(update={"console_secure_cookie": False})) as api:
        page = await api.http.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        signed = await api.http.post("/console/sign-in", data={"csrf": csrf.group(1), "token": api.tokens["operator"]})
        assert signed.status_code == 303
        yield api


async def corrupt(api: Api, exception_id: str, **values: object) -> None:
    """Store what no API call would: the row as a bad record or a bug could leave it."""
    async with api.services.db.write() as session, session.begin():
        await session.execute(sa.update(ExceptionRow).where(ExceptionRow.id == exception_id).values(**values))


def counted(page: str) -> float:
    return REGISTRY.get_sample_value("loopgate_rows_set_aside_total", {"where": page}) or 0.0


async def test_a_row_whose_date_overflows_is_shown_unrenderable_and_the_queue_renders(console: Api) -> None:
    good = await console.create(severity="critical", summary="the good one")
    bad = await console.create(severity="critical")
    await corrupt(console, bad["id"], first_seen=FAR, last_seen=FAR)
    before = counted("console_queue")

    page = await console.http.get("/console/queue")

    assert page.status_code == 200, page.text[:2000]
    assert "the good one" in page.text
    row = re.search(r'<tr class="unrenderable"[^>]*>(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert bad["id"] in html.unescape(row.group(1)) and "overflow" in row.group(1).lower()
    assert counted("console_queue") == before + 1
    assert (await console.http.get(f"/console/exceptions/{good['id']}")).status_code == 200


async def test_the_page_of_an_unrenderable_exception_says_why_instead_of_failing(console: Api) -> None:
    bad = await console.create(severity="critical")
    await corrupt(console, bad["id"], first_seen=FAR, last_seen=FAR)
    before = counted("console_exception")

    page = await console.http.get(f"/console/exceptions/{bad['id']}")

    assert page.status_code == 200, page.text[:2000]
    assert bad["id"] in html.unescape(page.text) and "overflow" in page.text.lower()
    assert counted("console_exception") == before + 1


async def test_an_exception_that_cannot_be_exported_is_set_aside_and_the_export_goes_on(console: Api) -> None:
    made = [await console.create() for _ in range(3)]
    for exc in made:
        assert (await console.act(exc["id"], "resolve", {"decision": "confirmed"})).status_code == 200
    await corrupt(console, made[1]["id"], kind="no-such-kind")
    before = counted("training_export")

    response = await console.http.get("/v1/export/training-data", headers=console.auth("operator"))

    assert response.status_code == 200
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert sorted(line["exception_id"] for line in lines) == sorted([made[0]["id"], made[2]["id"]])
    assert counted("training_export") == before + 1
