"""Every endpoint with every role: 401 without a valid token, 403 when the role may not, and
otherwise past authorization (whatever the endpoint then answers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loopgate.resolution_api.app import create_app
from tests.fixtures.api import Api, record

_TOMORROW = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()  # within the snooze bound

# (method, path, json body, roles allowed). "X" is an exception id that does not exist: an
# authorized call then answers 404 (or 422), which proves it got past authorization.
READ = {"operator", "admin", "reviewer", "analyst"}  # analysts read; reviewers read within their scope
WORK = {"operator", "admin", "reviewer"}
BULK = {"operator", "admin"}  # reviewers work one exception at a time
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/v1/exceptions", None, {"service", "admin"}),
    ("GET", "/v1/exceptions", None, READ),
    ("GET", "/v1/approvals", None, READ),
    ("POST", "/v1/exceptions/batch", {"records": []}, {"service", "admin"}),
    ("POST", "/v1/exceptions/bulk-resolve", {"ids": ["X"], "decision": "confirmed"}, BULK),
    (
        "POST",
        "/v1/exceptions/bulk",
        {"action": "resolve", "filter": {"rule_id": "X"}, "dry_run": True, "decision": "confirmed"},
        BULK,
    ),
    ("GET", "/v1/stats/verdicts", None, READ),
    ("GET", "/v1/stats/agreement", None, READ),
    ("GET", "/v1/reviews", None, WORK),
    ("GET", "/v1/reviews/X", None, READ),
    ("POST", "/v1/reviews/X/decision", {"decision": "confirmed"}, WORK),
    ("GET", "/v1/export/training-data", None, READ),
    ("GET", "/v1/export/label-studio", None, READ),
    ("GET", "/v1/export/label-studio/config", None, READ),
    ("GET", "/v1/export/huggingface", None, READ),
    ("GET", "/v1/exceptions/X", None, READ),
    ("GET", "/v1/exceptions/X/history", None, READ),
    ("POST", "/v1/exceptions/X/claim", {}, WORK),
    ("POST", "/v1/exceptions/X/unclaim", {}, WORK),
    ("POST", "/v1/exceptions/X/resolve", {"decision": "confirmed"}, WORK),
    ("POST", "/v1/exceptions/X/escalate", {"reason": "r"}, WORK),
    ("POST", "/v1/exceptions/X/snooze", {"until": _TOMORROW}, WORK),
    ("POST", "/v1/exceptions/X/reopen", {"reason": "r"}, {"admin"}),
    ("POST", "/v1/tokens", {"name": "n", "role": "operator"}, {"admin"}),
    ("GET", "/v1/tokens", None, {"admin"}),
    ("DELETE", "/v1/tokens/X", None, {"admin"}),
    ("POST", "/v1/tokens/X/rotate", {}, {"admin"}),
    ("GET", "/v1/audit", None, {"admin"}),
    ("GET", "/v1/whoami", None, {"service", "operator", "admin", "reviewer", "analyst"}),
    ("POST", "/v1/silences", {"client_id": "c", "ends_at": _TOMORROW, "comment": "c"}, {"operator", "admin"}),
    ("GET", "/v1/silences", None, {"operator", "admin"}),
    ("GET", "/v1/silences/X", None, {"operator", "admin"}),
    ("GET", "/v1/silences/X/history", None, {"operator", "admin"}),
    ("POST", "/v1/silences/X/expire", None, {"operator", "admin"}),
    ("GET", "/v1/admin/notifications/set-aside", None, {"admin"}),
    ("GET", "/v1/admin/notifications/set-aside-events", None, {"admin"}),
    ("GET", "/v1/admin/outcomes/set-aside", None, {"admin"}),
    ("GET", "/v1/oncall", None, {"operator", "admin"}),
]
ROLES = ["service", "operator", "admin", "reviewer", "analyst"]
CASES = [(m, p, b, allowed, role) for m, p, b, allowed in ENDPOINTS for role in [None, "bad", *ROLES]]


def test_the_matrix_covers_every_authenticated_endpoint() -> None:
    schema = create_app().openapi()
    documented = {
        (method.upper(), path.replace("{exception_id}", "X").replace("{token_id}", "X").replace("{silence_id}", "X"))
        for path, operations in schema["paths"].items()
        for method in operations
        if path.startswith("/v1/")
    }
    assert documented == {(m, p) for m, p, _, _ in ENDPOINTS}


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "role"),
    CASES,
    ids=[f"{m} {p} as {r}" for m, p, _, _, r in CASES],
)
async def test_role_matrix(api: Api, method: str, path: str, body: Any, allowed: set[str], role: str | None) -> None:
    headers = {} if role is None else api.auth(role) if role in ROLES else {"Authorization": "Bearer lg_bad"}
    json_body = record() if (method, path) == ("POST", "/v1/exceptions") else body

    response = await api.http.request(method, path, json=json_body, headers=headers)

    if role in (None, "bad"):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    elif role not in allowed:
        assert response.status_code == 403
        assert response.json()["detail"].startswith(f"role '{role}' may not ")
    else:
        assert response.status_code in {200, 201, 204, 404}, response.text
