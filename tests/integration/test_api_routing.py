"""Routing through the API (contract v2): each exception records the queue its routes file sends it
to when it is created, lists filter by queue, and the outcome carries it. Both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.queues.routing import RoutesError
from loopgate_schemas.outcomes import Outcome
from tests.fixtures.api import Api, ApiFactory, record

ROUTES = """
default_queue = "triage"

[[routes]]
rule = ["claim_verification"]
queue = "reviewers-{client_id}"

[[routes]]
source = ["bid-management.events"]
min_severity = "high"
queue = "media-buying"
"""


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES)
    return path


@pytest.fixture
async def routed(api_factory: ApiFactory, api_settings: Settings, routes_file: Path) -> AsyncIterator[Api]:
    async with api_factory(api_settings.model_copy(update={"routes_file": routes_file})) as running:
        yield running


async def queue_of(api: Api, exception_id: str) -> str:
    response = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    queue: str = response.json()["queue"]
    return queue


def claim(client_id: str) -> dict[str, object]:
    return {
        "rule_id": "claim_verification",
        "kind": "policy",
        "severity": "medium",
        "source": "content-pipeline.events",
        "event_type": "content.generated",
        "client_id": client_id,
    }


async def test_an_exception_records_the_queue_its_first_matching_route_names(routed: Api) -> None:
    urgent = await routed.create(severity="critical")
    other = await routed.create(severity="medium")
    assert (urgent["queue"], other["queue"]) == ("media-buying", "triage")
    fetched = await routed.http.get(f"/v1/exceptions/{urgent['id']}", headers=routed.auth("operator"))
    assert fetched.json()["queue"] == "media-buying"


async def test_claim_verification_goes_to_the_clients_own_reviewers(routed: Api) -> None:
    acme = await routed.create(**claim("acme"))
    globex = await routed.create(**claim("globex"))
    assert (acme["queue"], globex["queue"]) == ("reviewers-acme", "reviewers-globex")


async def test_a_grouped_occurrence_stays_in_the_queue_of_the_exception(routed: Api) -> None:
    first = await routed.create(severity="critical")
    again = record(fingerprint=first["fingerprint"], severity="medium")
    response = await routed.http.post("/v1/exceptions", json=again, headers=routed.auth("service"))
    assert response.headers["Loopgate-Result"] == "grouped"
    assert await queue_of(routed, response.json()["id"]) == "media-buying"


async def test_a_batch_routes_each_record_as_a_single_create_would(routed: Api) -> None:
    body = {"records": [record(**claim("acme")), record(severity="high"), record(severity="low")]}
    response = await routed.http.post("/v1/exceptions/batch", json=body, headers=routed.auth("service"))
    queues = [await queue_of(routed, r["body"]["id"]) for r in response.json()["results"]]
    assert queues == ["reviewers-acme", "media-buying", "triage"]


async def test_the_list_filters_by_queue_and_the_filter_repeats(routed: Api) -> None:
    acme = await routed.create(**claim("acme"))
    globex = await routed.create(**claim("globex"))
    urgent = await routed.create(severity="high")
    await routed.create(severity="low")

    async def ids(*queues: str) -> list[str]:
        params = [("queue", q) for q in queues]
        response = await routed.http.get("/v1/exceptions", params=params, headers=routed.auth("operator"))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids("reviewers-acme") == [acme["id"]]
    assert await ids("reviewers-acme", "reviewers-globex", "media-buying") == [urgent["id"], globex["id"], acme["id"]]
    assert await ids("nobody") == []


async def test_an_empty_queue_filter_is_422_naming_it(routed: Api) -> None:
    response = await routed.http.get("/v1/exceptions", params={"queue": ""}, headers=routed.auth("operator"))
    assert response.status_code == 422
    assert "queue" in response.json()["message"]


async def test_the_outcome_carries_the_queue(routed: Api) -> None:
    exc = await routed.create(**claim("acme"))
    resolved = await routed.act(exc["id"], "resolve", {"decision": "confirmed", "reason": "the claim is false"})
    assert resolved.status_code == 200, resolved.text
    async with routed.services.db.read() as session:
        (row,) = await store.outbox_for(session=session, exception_id=exc["id"])
    outcome = Outcome.model_validate(orjson.loads(row.payload))
    assert outcome.data.queue == "reviewers-acme"


async def test_the_training_export_carries_the_queue(routed: Api) -> None:
    exc = await routed.create(severity="critical")
    await routed.act(exc["id"], "resolve", {"decision": "confirmed"})
    response = await routed.http.get("/v1/export/training-data", headers=routed.auth("operator"))
    (line,) = [orjson.loads(x) for x in response.content.splitlines() if x]
    assert line["queue"] == "media-buying"


async def test_the_packaged_routes_send_claims_to_the_clients_reviewers_and_the_rest_to_default(api: Api) -> None:
    claimed = await api.create(**claim("northwind"))
    other = await api.create()
    assert (claimed["queue"], other["queue"]) == ("reviewers-northwind", "default")


async def test_a_bad_routes_file_refuses_to_start_naming_the_key(
    api_factory: ApiFactory, api_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[routes]]\nqueue = "x"\nseverity = ["urgent"]\n')
    with pytest.raises(RoutesError, match=r"routes\.0\.severity\.0"):
        async with api_factory(api_settings.model_copy(update={"routes_file": path})):
            pass


async def test_a_claim_whose_client_makes_no_queue_name_goes_to_the_default_queue_visibly(
    routed: Api, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    def fallbacks() -> float:
        return REGISTRY.get_sample_value("loopgate_api_routing_fallbacks_total", {"reason": "invalid_queue"}) or 0

    before = fallbacks()
    exc = await routed.create(**claim("Acme Corp"))

    assert exc["queue"] == "triage"
    history = await routed.http.get(f"/v1/exceptions/{exc['id']}/history", headers=routed.auth("operator"))
    [created] = [e for e in history.json()["items"] if e["action"] == "created"]
    assert "reviewers-Acme Corp" in created["fields"]["routing"]
    assert "not a valid queue name" in created["fields"]["routing"]
    assert fallbacks() == before + 1
    assert any("reviewers-Acme Corp" in r.getMessage() and exc["id"] in r.getMessage() for r in caplog.records)


async def test_a_claim_routed_as_configured_carries_no_routing_note(routed: Api) -> None:
    exc = await routed.create(**claim("acme"))
    history = await routed.http.get(f"/v1/exceptions/{exc['id']}/history", headers=routed.auth("operator"))
    [created] = [e for e in history.json()["items"] if e["action"] == "created"]
    assert "routing" not in created["fields"]
