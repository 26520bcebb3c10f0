"""The OpenAPI document promises every answer the door gives: for each route that reads a JSON
body, a body that is not UTF-8, one nested too deep and one over the body limit get answers the
document lists for that route (schemathesis holds the API to the document, but finds such bodies
only by chance)."""

from __future__ import annotations

import re

from loopgate.resolution_api.app import create_app
from tests.fixtures.api import Api

HOSTILE_BODIES = {
    "not UTF-8": b"\xff",
    "nested too deep": b"[" * 40 + b"]" * 40,
    "over the body limit": b" " * (2 * 1024 * 1024),
}


def _body_routes() -> list[tuple[str, str, set[str]]]:
    schema = create_app().openapi()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "X", path), set(operation["responses"]))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


async def test_every_route_documents_what_the_door_answers_to_a_hostile_body(api: Api) -> None:
    undocumented = []
    for method, path, documented in _body_routes():
        for what, body in HOSTILE_BODIES.items():
            response = await api.http.request(
                method, path, content=body, headers={**api.auth("admin"), "content-type": "application/json"}
            )
            assert response.status_code < 500, (method, path, what, response.text)
            if str(response.status_code) not in documented:
                undocumented.append(f"{method} {path}: {what} -> {response.status_code}")
    assert undocumented == []
