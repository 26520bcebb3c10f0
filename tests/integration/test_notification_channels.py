"""Email, PagerDuty and Opsgenie receivers (issue 28) against real receivers: an SMTP server
(aiosmtpd) that requires STARTTLS with a test CA's certificate and AUTH, and local HTTP
receivers that check PagerDuty's Events API v2 and Opsgenie's alert API as documented
(answering 400/422 to anything else, 403 to a wrong key). Exactly once and in order through
failures and a restart; a wrong password, host, certificate or key is a failing receiver
(log, loopgate_notification_receiver_up, /readyz) that is retried, never a bad row."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from tests.fixtures.api import ApiFactory
from tests.fixtures.clock import FakeClock
from tests.fixtures.receivers import Receivers
from tests.fixtures.smtp import USER, SmtpServer
from tests.integration.test_api_notifications import PUBLIC, notify_settings, rows_of, settled
from tests.integration.test_notifications_egress import _degraded, _up

PD_KEY = "R0UTINGKEY0123456789abcdef012345"
OG_KEY = "11111111-2222-3333-4444-555555555555"


def _mail_toml(
    smtp: SmtpServer,
    tmp_path: Path,
    *,
    password: str,
    ca: bool = True,
    port: int | None = None,
    security: str = "starttls",
) -> str:
    secret = tmp_path / "smtp-password"
    secret.write_text(password + "\n")
    return f"""
[receivers.mail]
kind = "email"
timeout_seconds = 5
subject_template = "[{{{{ exception.severity|upper }}}}] {{{{ exception.rule_id }}}} for {{{{ exception.client_id }}}}"
[receivers.mail.smtp]
host = "127.0.0.1"
port = {port or smtp.port}
security = "{security}"
username = "{USER}"
password_file = "{secret}"
{f'ca_file = "{smtp.ca_file}"' if ca else ""}
from_address = "Loopgate <loopgate@agency.example>"
to = ["oncall@agency.example", "lead@agency.example"]
[queues.default]
receivers = ["mail"]
"""


# aiosmtpd warns of AUTH without STARTTLS even on an implicit-TLS server, where the session is encrypted
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize(("security", "server"), [("starttls", "smtp_server"), ("tls", "smtps_server")])
async def test_an_email_arrives_over_tls_with_auth_once_with_the_console_link(
    api_factory: ApiFactory,
    api_settings: Settings,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    security: str,
    server: str,
) -> None:
    smtp_server: SmtpServer = request.getfixturevalue(server)
    toml = _mail_toml(smtp_server, tmp_path, password="right-password", security=security)
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        created = await api.create(severity="critical", summary="Overspend <b>on</b> li-1 & more")
        exception_id = created["id"]
        [mail] = await smtp_server.wait_for(1)
        [row] = await settled(api, exception_id, 1)
        assert row.sent_at is not None and row.attempts == 1
    await asyncio.sleep(0.3)
    assert len(smtp_server.received) == 1  # once, nothing resent after the stop
    assert mail.encrypted and mail.login == USER and smtp_server.logins == [(USER, True)]
    assert mail.mail_from == "loopgate@agency.example"
    assert mail.rcpt_tos == ["oncall@agency.example", "lead@agency.example"]
    message = mail.message
    assert message["From"] == "Loopgate <loopgate@agency.example>"
    assert message["To"] == "oncall@agency.example, lead@agency.example"
    assert message["Subject"] == "[CRITICAL] bid_over_cap for northwind"
    assert message["Message-ID"] == f"<{row.notification_id}@loopgate>"
    assert message["X-Loopgate-Notification-Id"] == row.notification_id
    link = f"{PUBLIC}/console/exceptions/{exception_id}"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain, markup = text.get_content(), html.get_content()
    assert f"Open it: {link}" in plain and "Overspend <b>on</b> li-1 & more" in plain
    assert f'<a href="{link}">Open exception {exception_id}</a>' in markup
    assert "Overspend &lt;b&gt;on&lt;/b&gt; li-1 &amp; more" in markup and "<b>on</b>" not in markup


@pytest.mark.parametrize(
    ("case", "said", "metric"),
    [
        ("password", r"^smtp_auth: 535 ", "auth"),
        ("certificate", r"^certificate: .*certificate verify failed", "certificate"),
        ("host", r"^connection: ", "connection"),
    ],
)
async def test_a_wrong_password_certificate_or_host_is_a_failing_receiver_not_a_bad_row(
    api_factory: ApiFactory,
    api_settings: Settings,
    smtp_server: SmtpServer,
    tmp_path: Path,
    case: str,
    said: str,
    metric: str,
) -> None:
    labels = {"receiver": "mail", "kind": "email", "reason": metric}
    failed_before = REGISTRY.get_sample_value("loopgate_notifications_failed_total", labels) or 0.0
    if case == "host":
        from loopgate_tools.processes import free_port

        toml = _mail_toml(smtp_server, tmp_path, password="right-password", port=free_port())
    else:
        toml = _mail_toml(smtp_server, tmp_path, password="wrong", ca=case != "certificate")
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            rows = await rows_of(api, exception_id)
            if rows and rows[0].attempts >= 2:
                [row] = rows
                break
            assert asyncio.get_running_loop().time() < deadline, [r.last_error for r in rows]
            await asyncio.sleep(0.05)
        assert row.sent_at is None and row.set_aside_at is None
        assert row.last_error is not None and re.search(said, row.last_error), row.last_error
        assert "wrong" not in row.last_error  # the password is never said
        assert _up("mail") == 0
        failed = REGISTRY.get_sample_value("loopgate_notifications_failed_total", labels) or 0.0
        assert failed - failed_before >= 2
        [problem] = await _degraded(api)
        assert problem.startswith("notification receiver mail failing for") and re.search(
            said, problem.split(": ", 1)[1]
        )
        assert smtp_server.received == []
        if case == "password":
            assert smtp_server.logins and all(not ok for _, ok in smtp_server.logins)
            smtp_server.password = "wrong"  # the server's side is put right: nobody restarts anything
            [mail] = await smtp_server.wait_for(1)
            await settled(api, exception_id, 1)
            assert _up("mail") == 1 and await _degraded(api) == []
            assert mail.message["X-Loopgate-Notification-Id"] == row.notification_id


# --- PagerDuty ----------------------------------------------------------------------------------

PD_SEVERITIES = {"critical", "error", "warning", "info"}


def pagerduty_schema_errors(body: Any) -> list[str]:
    """What PagerDuty's Events API v2 would refuse (its documented required fields and limits)."""
    if not isinstance(body, dict):
        return ["not an object"]
    errors = []
    known = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
    errors += [f"unknown field {k}" for k in body if k not in known]
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        errors.append("routing_key: a 32-character integration key")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("event_action")
    key = body.get("dedup_key")
    if action != "trigger" and not key:
        errors.append("dedup_key is required to acknowledge or resolve")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 255):
        errors.append("dedup_key: 1 to 255 characters")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "payload is required to trigger"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
            errors.append("payload.summary: 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("payload.source")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append("payload.severity: critical, error, warning or info")
        for link in body.get("links", []):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                errors.append("links[].href")
    return errors


def _pd_receiver(receivers: Receivers, accepted_key: dict[str, str], also: frozenset[str] = frozenset()) -> None:
    async def enqueue(request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("Content-Type") != "application/json":
            return web.json_response({"status": "invalid"}, status=400)
        if errors := pagerduty_schema_errors(body):
            return web.json_response({"status": "invalid event", "errors": errors}, status=400)
        if body["routing_key"] != accepted_key["key"] and body["routing_key"] not in also:
            return web.json_response({"status": "unrecognized routing key"}, status=403)
        return web.json_response({"status": "success", "dedup_key": body["dedup_key"]}, status=202)

    receivers.answer["/v2/enqueue"] = enqueue


async def test_pagerduty_is_triggered_then_resolved_by_exception_id_once_in_order_through_a_wrong_key_and_restart(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY", PD_KEY)
    accepted = {"key": "another-key-0123456789abcdef0123"}  # the key on PagerDuty's side is not ours yet
    _pd_receiver(receivers, accepted)
    toml = f'[receivers.pd]\nkind = "pagerduty"\nurl = "{receivers.url("/v2/enqueue")}"\nkey_env = "PD_KEY"\n'
    toml += '[queues.default]\nreceivers = ["pd"]\n'
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        created = await api.create(severity="high", summary="Overspend on li-1")
        exception_id = created["id"]
        resolved = await api.act(exception_id, "resolve", {"decision": "confirmed", "reason": "real"})
        assert resolved.status_code == 200, resolved.text
        await receivers.wait_for("/v2/enqueue", 3, attempts=True)
        assert all(r.status == 403 for r in receivers.attempts("/v2/enqueue"))
        rows = await rows_of(api, exception_id)
        assert [(r.event, r.sent_at, r.set_aside_at) for r in rows] == [
            ("opened", None, None),
            ("resolved", None, None),
        ]
        assert rows[0].last_error is not None and rows[0].last_error.startswith("http_403: ")
        [problem] = [p for p in await _degraded(api) if p.startswith("notification receiver")]
        assert _up("pd") == 0 and problem.startswith("notification receiver pd failing for") and "http_403" in problem
    accepted["key"] = PD_KEY  # put right while the API is down
    async with api_factory(settings) as api:
        await settled(api, exception_id, 2)
        assert _up("pd") == 1
    sent = [r.body for r in receivers.requests if r.status == 202]
    assert [b["event_action"] for b in sent] == ["trigger", "resolve"]  # once each, in order
    trigger, resolve = sent
    assert trigger["dedup_key"] == resolve["dedup_key"] == exception_id
    assert trigger["routing_key"] == PD_KEY
    assert trigger["payload"]["severity"] == "error" and trigger["payload"]["source"] == created["source"]
    assert trigger["payload"]["summary"] == "[HIGH] bid_over_cap opened (northwind): Overspend on li-1"
    assert trigger["links"] == [
        {"href": f"{PUBLIC}/console/exceptions/{exception_id}", "text": f"Open exception {exception_id}"}
    ]
    assert resolve == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": exception_id}
    stored = await _payloads(api_factory, settings, exception_id)
    assert all(PD_KEY not in p for p in stored)  # the key is added at each attempt, never stored


async def _payloads(api_factory: ApiFactory, settings: Settings, exception_id: str) -> list[str]:
    async with api_factory(settings) as api:
        return [r.payload for r in await rows_of(api, exception_id)]


# --- Opsgenie -----------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _og_receiver(receivers: Receivers, seen: list[tuple[str, str, dict[str, str], Any]]) -> Handler:
    """Opsgenie's /v2/alerts (registered) and the handler for a close path (to register)."""

    async def alerts(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.method, request.path_qs, dict(request.headers), body))
        if request.headers.get("Authorization") != f"GenieKey {OG_KEY}":
            return web.json_response({"message": "Could not authenticate"}, status=401)
        if request.path == "/v2/alerts":
            message = body.get("message")
            if not isinstance(message, str) or not 0 < len(message) <= 130 or len(body.get("alias", "")) > 512:
                return web.json_response({"message": "Request body is not processable"}, status=422)
            if body.get("priority") not in ("P1", "P2", "P3", "P4", "P5"):
                return web.json_response({"message": "priority"}, status=422)
        elif request.query.get("identifierType") != "alias" or not request.path.endswith("/close"):
            return web.json_response({"message": "identifier"}, status=422)
        return web.json_response({"result": "Request will be processed", "requestId": "r"}, status=202)

    receivers.answer["/v2/alerts"] = alerts
    return alerts


async def test_opsgenie_creates_then_closes_by_alias_with_its_genie_key_once_in_order(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    key_file = tmp_path / "opsgenie-key"
    key_file.write_text(f"{OG_KEY}\n")
    seen: list[tuple[str, str, dict[str, str], Any]] = []
    handler = _og_receiver(receivers, seen)
    toml = f'[receivers.og]\nkind = "opsgenie"\nurl = "{receivers.base}"\nkey_file = "{key_file}"\n'
    toml += '[queues.default]\nreceivers = ["og"]\n'
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        exception_id = (await api.create(severity="critical", client_id="client/with?odd#id"))["id"]
        close_path = f"/v2/alerts/{exception_id}/close"
        receivers.answer[close_path] = handler
        resolved = await api.act(exception_id, "resolve", {"decision": "dismissed", "reason": "known"})
        assert resolved.status_code == 200, resolved.text
        await settled(api, exception_id, 2)
    assert [(m, p) for m, p, _, _ in seen] == [
        ("POST", "/v2/alerts"),
        ("POST", f"{close_path}?identifierType=alias"),
    ]
    create, close = seen[0][3], seen[1][3]
    assert all(h["Authorization"] == f"GenieKey {OG_KEY}" for _, _, h, _ in seen)
    assert create["alias"] == exception_id and create["priority"] == "P1" and create["source"] == "Loopgate"
    assert create["details"]["url"] == f"{PUBLIC}/console/exceptions/{exception_id}"
    assert create["message"].startswith("bid_over_cap opened (client/with?odd#id): ")
    assert close == {"source": "Loopgate", "note": "resolved in Loopgate (dismissed)"}


async def test_a_wrong_opsgenie_key_keeps_the_alert_waiting_and_says_so(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OG_KEY", "not-the-key")
    seen: list[tuple[str, str, dict[str, str], Any]] = []
    _og_receiver(receivers, seen)
    toml = f'[receivers.og]\nkind = "opsgenie"\nurl = "{receivers.base}"\nkey_env = "OG_KEY"\n'
    toml += '[queues.default]\nreceivers = ["og"]\n'
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        await receivers.wait_for("/v2/alerts", 3, attempts=True)
        [row] = await rows_of(api, exception_id)
        assert row.sent_at is None and row.set_aside_at is None
        assert row.last_error == 'http_401: {"message": "Could not authenticate"}'
        assert _up("og") == 0
        [problem] = await _degraded(api)
        assert "notification receiver og failing" in problem and "http_401" in problem
        assert "not-the-key" not in json.dumps(problem)


async def test_an_escalation_level_pages_pagerduty_and_the_resolution_resolves_that_incident(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY", PD_KEY)
    _pd_receiver(receivers, {"key": PD_KEY})
    toml = f"""
[receivers.team]
kind = "slack"
url = "{receivers.url("/team")}"
[receivers.pd]
kind = "pagerduty"
url = "{receivers.url("/v2/enqueue")}"
key_env = "PD_KEY"
[queues.default]
receivers = ["team"]
[[queues.default.escalation]]
after_seconds = 600
when = "unclaimed"
receivers = ["pd"]
"""
    settings = notify_settings(api_settings, tmp_path, toml)
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        exception_id = (await api.create(severity="medium", detected_at=start.isoformat()))["id"]
        await receivers.wait_for("/team", 1)
        assert receivers.attempts("/v2/enqueue") == []  # not paged before the level is reached
        clock.advance(700)
        await api.services.sweeper.sweep()
        [page] = await receivers.wait_for("/v2/enqueue", 1, attempts=True)
        resolved = await api.act(exception_id, "resolve", {"decision": "confirmed", "reason": "real"})
        assert resolved.status_code == 200, resolved.text
        await settled(api, exception_id, 3)
    sent = [r.body for r in receivers.requests if r.path == "/v2/enqueue"]
    assert [(b["event_action"], b["dedup_key"]) for b in sent] == [("trigger", exception_id), ("resolve", exception_id)]
    assert page.status == 202 and page.body["payload"]["severity"] == "warning"
    assert page.body["payload"]["summary"].startswith("[MEDIUM] bid_over_cap escalation level 1: still unclaimed")
    assert page.body["payload"]["custom_details"]["event"] == "escalation level 1"
    assert len(receivers.attempts("/team")) == 1  # the chat hears nothing of the resolution


# --- escalation to a person -------------------------------------------------------------------

CAROL_KEY = "CAROLR0UTINGKEY0123456789abcdef0"
DAN_KEY = "DANR0UTINGKEY0123456789abcdef012"
CAROL_SCHEDULES = f"""
[people.carol]
name = "Carol Diaz"
channels = [
    {{ kind = "email", address = "Carol Diaz <carol@agency.example>", receiver = "mail" }},
    {{ kind = "pagerduty", address = "{CAROL_KEY}", receiver = "pd" }},
    {{ kind = "opsgenie", address = "carol@agency.example", receiver = "og" }},
]
[people.dan]
channels = [{{ kind = "pagerduty", address = "{DAN_KEY}", receiver = "pd" }}]
"""


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_an_escalation_to_a_person_emails_pages_and_adds_them_as_responder_on_their_own_addresses(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    smtp_server: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY", PD_KEY)
    monkeypatch.setenv("OG_KEY", OG_KEY)
    _pd_receiver(receivers, {"key": CAROL_KEY}, also=frozenset({DAN_KEY}))  # the team's key would be refused
    seen: list[tuple[str, str, dict[str, str], Any]] = []
    handler = _og_receiver(receivers, seen)
    toml = _mail_toml(smtp_server, tmp_path, password="right-password").replace(
        '[queues.default]\nreceivers = ["mail"]\n', ""
    )
    toml += f"""
[receivers.pd]
kind = "pagerduty"
url = "{receivers.url("/v2/enqueue")}"
key_env = "PD_KEY"
[receivers.og]
kind = "opsgenie"
url = "{receivers.base}"
key_env = "OG_KEY"
[queues.default]
receivers = ["mail"]
[[queues.default.escalation]]
after_seconds = 600
when = "unresolved"
people = ["carol", "dan"]
"""
    (tmp_path / "schedules.toml").write_text(CAROL_SCHEDULES)
    settings = notify_settings(api_settings, tmp_path, toml, schedules_file=tmp_path / "schedules.toml")
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        exception_id = (await api.create(severity="critical", detected_at=start.isoformat()))["id"]
        [team_mail] = await smtp_server.wait_for(1)  # the opening: the receiver's own list
        clock.advance(700)
        await api.services.sweeper.sweep()
        await smtp_server.wait_for(2)
        page = (await receivers.wait_for("/v2/enqueue", 2, attempts=True))[0]
        await receivers.wait_for("/v2/alerts", 1, attempts=True)
        receivers.answer[f"/v2/alerts/{exception_id}/close"] = handler
        resolved = await api.act(exception_id, "resolve", {"decision": "confirmed", "reason": "real"})
        assert resolved.status_code == 200, resolved.text
        await settled(api, exception_id, 8)  # opened mail, level mail, 2 pages, create; 2 resolves, close
    assert team_mail.rcpt_tos == ["oncall@agency.example", "lead@agency.example"]
    carol_mail = smtp_server.received[1]
    assert carol_mail.rcpt_tos == ["carol@agency.example"]
    assert carol_mail.message["To"] == "Carol Diaz <carol@agency.example>"
    assert carol_mail.message["Subject"] == "[CRITICAL] bid_over_cap for northwind"
    sent = [r.body for r in receivers.requests if r.path == "/v2/enqueue" and r.status == 202]
    assert [(b["event_action"], b["routing_key"], b["dedup_key"]) for b in sent] == [
        ("trigger", CAROL_KEY, exception_id),  # one incident per person paged, on their own key
        ("trigger", DAN_KEY, exception_id),
        ("resolve", CAROL_KEY, exception_id),  # each resolved with the key that triggered it
        ("resolve", DAN_KEY, exception_id),
    ]
    assert len({r.headers["X-Loopgate-Notification-Id"] for r in receivers.requests if r.status == 202}) == 6
    assert page.status == 202 and "person_routing_key" not in sent[0]
    assert page.body["payload"]["custom_details"]["event"] == "escalation level 1"
    create = seen[0][3]
    assert create["responders"] == [{"type": "user", "username": "carol@agency.example"}]
    assert [(m, p) for m, p, _, _ in seen] == [
        ("POST", "/v2/alerts"),
        ("POST", f"/v2/alerts/{exception_id}/close?identifierType=alias"),
    ]


@pytest.mark.parametrize(
    ("channel", "named"),
    [
        (  # a header injected into the To line: refused by the file itself
            '{ kind = "email", address = "carol@agency.example\\nBcc: spy@evil.example", receiver = "mail" }',
            r"people\.carol\.channels\.0\.address",
        ),
        (  # a list where one address goes
            '{ kind = "email", address = "carol@agency.example, spy@evil.example", receiver = "mail" }',
            r"people\.carol\.channels\.0\.address: receiver 'mail' is email: .*one address, not a list",
        ),
        (
            '{ kind = "pagerduty", address = "not-a-key", receiver = "pd" }',
            r"people\.carol\.channels\.0\.address: receiver 'pd' is pagerduty: a PagerDuty routing key is 32",
        ),
        (
            '{ kind = "opsgenie", address = "carol <carol@agency.example>", receiver = "og" }',
            r"people\.carol\.channels\.0\.address: receiver 'og' is opsgenie: an Opsgenie user name",
        ),
    ],
)
def test_a_persons_address_its_receiver_cannot_carry_refuses_to_start_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channel: str, named: str
) -> None:
    from loopgate.common.errors import LoopgateError
    from loopgate.resolution_api.notifications.config import load_notifications
    from loopgate.resolution_api.schedules.config import load_schedules
    from loopgate.resolution_api.schedules.targets import check_escalation_targets

    path = tmp_path / "n.toml"
    path.write_text(
        '[receivers.mail]\nkind = "email"\n[receivers.mail.smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n'
        'from_address = "l@agency.example"\nto = ["team@agency.example"]\n'
        '[receivers.pd]\nkind = "pagerduty"\nurl = "https://events.example/v2/enqueue"\nkey_env = "PD_KEY"\n'
        '[receivers.og]\nkind = "opsgenie"\nurl = "https://og.example"\nkey_env = "OG_KEY"\n'
        '[queues.default]\nreceivers = ["mail"]\n'
    )
    (tmp_path / "s.toml").write_text(f"[people.carol]\nchannels = [{channel}]\n")
    monkeypatch.setenv("PD_KEY", PD_KEY)
    monkeypatch.setenv("OG_KEY", OG_KEY)
    config, _ = load_notifications(path)
    with pytest.raises(LoopgateError, match=named):
        check_escalation_targets(config, load_schedules(tmp_path / "s.toml"), path)
