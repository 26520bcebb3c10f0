"""Delivering exception records to the resolution API, and what each answer means.

Records go in batches (`POST /v1/exceptions/batch`, `deliver_batch`): the API answers each record
as a single create would, so the table below applies to each record's own status; the batch
request's status (401, 403, 404, 5xx, a connection refused...) applies to all of its records at
once: a misconfiguration holds them all, a 5xx retries them all. A batch the API refuses whole
(400, 413, 422: e.g. a body limit smaller than the dispatcher's) is sent again one record at a
time, so only a record the API judged on its own is ever dead-lettered. A record that is not
JSON, or too large for a batch, goes alone through the single create (`deliver`).

An answer either judges the record, or says something about the dispatcher itself:

| answer | verdict | what the dispatcher does |
| --- | --- | --- |
| 2xx (201 created, 200 already known or grouped) | accepted | commit it |
| 400, 409, 413, 422 | rejected | the API judged this record: to `exceptions.dlq` with its answer, go on |
| 408, 425, 429, 5xx, timeout, connection reset or closed | retry | this record again, capped backoff |
| 401, 403 | misconfigured | the token (`LOOPGATE_API_TOKEN`) is wrong, revoked or lacks the role |
| 404, 405, 410, 3xx | misconfigured | no create endpoint there: `LOOPGATE_API_URL` is wrong |
| connection refused, DNS failure, TLS error, bad URL | misconfigured | `LOOPGATE_API_URL` (or the API is not running) |
| any other status | misconfigured | not an answer the Loopgate API gives for a record: hold, do not guess |

A misconfiguration is never the record's fault, so it never dead-letters one: the `DeliveryGate`
closes, every record waits uncommitted, one probe at a time retries with capped backoff, and the
first accepted record opens the gate again. Why these codes:
- 404: the create route has no path parameter, so it never answers 404 for a record; a 404 is
  a wrong URL (or prefix). 405 and 410 likewise mean the URL points at something else.
- 3xx: redirects are not followed (a POST followed through a 301/302 becomes a GET, which would
  "succeed" without storing anything); the `Location` is in the log for the operator.
- 409: create is idempotent on `exception_id`, so a conflict can only be this record
  contradicting what is stored: a judgement on the record.
- Unknown codes hold rather than dead-letter: a record held is visible (lag, gauge, `/readyz`)
  and delivered once the cause is fixed; a record dead-lettered by a guess is out of sight.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
import orjson

from loopgate.common import metrics


class Verdict(Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    REJECTED = "rejected"
    MISCONFIGURED = "misconfigured"


class Misconfiguration(Enum):
    """Why the dispatcher cannot deliver anything (the bounded `reason` label of its gauge)."""

    TOKEN_MISSING = "token_missing"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    WRONG_URL = "wrong_url"
    CONNECTION_REFUSED = "connection_refused"
    DNS = "dns"
    TLS = "tls"
    UNEXPECTED_STATUS = "unexpected_status"


# What to check, per cause: one line for the operator reading the log or /readyz.
REMEDIES: dict[Misconfiguration, str] = {
    Misconfiguration.TOKEN_MISSING: "LOOPGATE_API_TOKEN is empty (or LOOPGATE_API_TOKEN_FILE holds none): create a "
    "token with `loopgate api tokens create --role service --name dispatcher` and set it or write it to the file",
    Misconfiguration.UNAUTHORIZED: "the API does not know this token, or it was revoked: check "
    "LOOPGATE_API_TOKEN (a token from `loopgate api tokens create --role service`)",
    Misconfiguration.FORBIDDEN: "the token may not create exceptions: LOOPGATE_API_TOKEN needs the service role",
    Misconfiguration.WRONG_URL: "no Loopgate create endpoint at this URL: check LOOPGATE_API_URL "
    "(the API's base URL, without /v1)",
    Misconfiguration.CONNECTION_REFUSED: "nothing listens at LOOPGATE_API_URL: check the setting, or start the API",
    Misconfiguration.DNS: "the host of LOOPGATE_API_URL does not resolve: check the setting",
    Misconfiguration.TLS: "TLS failed (certificate, or https against a plain http port): check "
    "LOOPGATE_API_URL and the API's certificate",
    Misconfiguration.UNEXPECTED_STATUS: "an answer the Loopgate API does not give for a record: check that "
    "LOOPGATE_API_URL points at the Loopgate API",
}


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    status: int | None
    detail: str
    cause: Misconfiguration | None = None  # set when verdict is MISCONFIGURED


RECORD_REJECTED = frozenset({400, 409, 413, 422})
RETRYABLE_4XX = frozenset({408, 425, 429})
STATUS_MISCONFIGURATIONS: dict[int, Misconfiguration] = {
    401: Misconfiguration.UNAUTHORIZED,
    403: Misconfiguration.FORBIDDEN,
    404: Misconfiguration.WRONG_URL,
    405: Misconfiguration.WRONG_URL,
    410: Misconfiguration.WRONG_URL,
}


def classify(status: int) -> tuple[Verdict, Misconfiguration | None]:
    """The verdict on an HTTP status (the table in this module's docstring)."""
    if 200 <= status < 300:
        return Verdict.ACCEPTED, None
    if status in RECORD_REJECTED:
        return Verdict.REJECTED, None
    if status in RETRYABLE_4XX or 500 <= status < 600:
        return Verdict.RETRY, None
    if 300 <= status < 400:
        return Verdict.MISCONFIGURED, Misconfiguration.WRONG_URL
    return Verdict.MISCONFIGURED, STATUS_MISCONFIGURATIONS.get(status, Misconfiguration.UNEXPECTED_STATUS)


def classify_error(err: BaseException) -> tuple[Verdict, Misconfiguration | None]:
    """The verdict when no HTTP answer came back."""
    if isinstance(err, aiohttp.ClientSSLError | ssl.SSLError):
        return Verdict.MISCONFIGURED, Misconfiguration.TLS
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return Verdict.MISCONFIGURED, Misconfiguration.DNS
    if isinstance(err, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return Verdict.MISCONFIGURED, Misconfiguration.WRONG_URL
    if isinstance(err, aiohttp.ClientConnectorError) and isinstance(err.os_error, ConnectionRefusedError):
        return Verdict.MISCONFIGURED, Misconfiguration.CONNECTION_REFUSED
    return Verdict.RETRY, None  # timeouts, resets, a server that went away: transient


def backoff_seconds(attempt: int, *, initial: float, maximum: float) -> float:
    """Capped exponential backoff with full jitter (attempt counts from 1)."""
    ceiling = min(maximum, initial * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


async def post_once(
    client: aiohttp.ClientSession,
    url: str,
    value: bytes,
    *,
    keep_body: bool = False,
    traceparent: str | None = None,
) -> Answer:
    """One POST; the answer's detail is the body (its first 1,000 bytes unless `keep_body`)."""
    headers = {"content-type": "application/json"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    try:
        async with client.post(url, data=value, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            detail = (body if keep_body else body[:1000]).decode(errors="replace")
            if 300 <= response.status < 400:
                detail = f"redirected to {response.headers.get('location', '?')}"
            verdict, cause = classify(response.status)
            return Answer(verdict, response.status, detail, cause)
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as err:
        verdict, cause = classify_error(err)
        return Answer(verdict, None, f"{type(err).__name__}: {err}"[:300], cause)


async def check_configuration(client: aiohttp.ClientSession, url: str) -> Answer:
    """POST an empty record, which stores nothing: the API checks the token before it validates a
    body, so its 422 proves the URL and the token right (given as ACCEPTED); a misconfiguration
    answers as it would for a record. Lets the dispatcher know before, or without, any record."""
    answer = await post_once(client, url, b"{}")
    return Answer(Verdict.ACCEPTED, 422, answer.detail) if answer.status == 422 else answer


GateListener = Callable[["GateState", "GateState"], None]  # (previous, current)


@dataclass(frozen=True, slots=True)
class GateState:
    """Open (cause None), or closed because of `cause`; `detail` is the answer that closed it."""

    cause: Misconfiguration | None
    detail: str = ""
    since: float = 0.0  # time.monotonic()


class DeliveryGate:
    """Open: records are posted concurrently. Closed (a misconfiguration): one probe at a time, each
    after a capped backoff, until an accepted record opens it again. `listener` hears every change
    of state (not every record), so it can log once and set the gauge."""

    def __init__(
        self,
        *,
        initial_backoff: float,
        max_backoff: float,
        listener: GateListener | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.state = GateState(None, since=time.monotonic())
        self._initial, self._maximum = initial_backoff, max_backoff
        self._listener = listener
        self._sleep = sleep
        self._probe = asyncio.Lock()
        self._probes = 0

    @property
    def is_open(self) -> bool:
        return self.state.cause is None

    def close(self, cause: Misconfiguration, detail: str) -> None:
        if self.state.cause is not cause:
            self._change(GateState(cause, detail, time.monotonic()))

    def observe(self, answer: Answer) -> None:
        """Only an accepted record proves the URL and the token right (a 400 or 413 may come before
        the token is even looked at), so only that opens the gate."""
        if answer.verdict is Verdict.MISCONFIGURED and answer.cause is not None:
            self.close(answer.cause, answer.detail)
        elif answer.verdict is Verdict.ACCEPTED and not self.is_open:
            self._probes = 0
            self._change(GateState(None, since=time.monotonic()))

    def _change(self, state: GateState) -> None:
        previous, self.state = self.state, state
        if self._listener is not None:
            self._listener(previous, state)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this caller's turn to post: at once while open; while closed, as the one probe."""
        if self.is_open:
            yield
            return
        async with self._probe:
            probing: bool = not self.is_open  # read again: it may have opened while this caller queued
            if probing:
                self._probes += 1
                await self._sleep(backoff_seconds(self._probes, initial=self._initial, maximum=self._maximum))
                yield
                return
        yield  # opened while this caller queued behind the probe


async def deliver(
    post: Callable[[], Awaitable[Answer]],
    gate: DeliveryGate,
    *,
    initial_backoff: float,
    max_backoff: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Answer:
    """Post until the API accepts or rejects the record for good; retries forever otherwise
    (cancel the task to stop: nothing is committed for an undelivered record)."""
    attempt = 0
    while True:
        async with gate.turn():
            answer = await post()
            gate.observe(answer)
        if answer.verdict is Verdict.ACCEPTED:
            metrics.EXCEPTIONS_DELIVERED.labels(str(answer.status)).inc()
            return answer
        if answer.verdict is Verdict.REJECTED:
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels("rejected").inc()
            return answer
        if answer.verdict is Verdict.MISCONFIGURED:
            # Nothing listening is also what an API outage looks like: counted as before.
            unavailable = answer.cause is Misconfiguration.CONNECTION_REFUSED
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels("unavailable" if unavailable else "misconfigured").inc()
            continue  # the closed gate paces the next try
        reason = "unavailable" if answer.status is None else ("throttled" if answer.status < 500 else "server_error")
        metrics.EXCEPTIONS_DELIVERY_FAILED.labels(reason).inc()
        if not gate.is_open:
            continue  # this was the probe: the gate paces the next try
        attempt += 1
        await sleep(backoff_seconds(attempt, initial=initial_backoff, maximum=max_backoff))


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """The batch request's own answer, and each record's (in order) when the API answered the batch."""

    answer: Answer
    items: list[Answer] | None = None


def batch_body(values: list[bytes]) -> bytes:
    """The body of a batched create holding these records (each one JSON value) as they are."""
    return b'{"records":[' + b",".join(values) + b"]}"


BATCH_OVERHEAD = len(batch_body([]))


def _item_answer(item: Any) -> Answer:
    # The token and URL are proven by the batch's 200: a record's own status only accepts it,
    # rejects it (the API judged it), or asks for it again (e.g. 503: the database was busy).
    status = item.get("status") if isinstance(item, dict) else None
    if not isinstance(status, int):
        return Answer(Verdict.RETRY, None, f"no status for this record in the batch answer: {item!r}"[:300])
    detail = orjson.dumps(item.get("body")).decode()[:1000]
    if 200 <= status < 300:
        return Answer(Verdict.ACCEPTED, status, detail)
    if status in RECORD_REJECTED:
        return Answer(Verdict.REJECTED, status, detail)
    return Answer(Verdict.RETRY, status, detail)


async def post_batch(client: aiohttp.ClientSession, url: str, values: list[bytes]) -> BatchAnswer:
    answer = await post_once(client, url, batch_body(values), keep_body=True)
    if answer.status != 200:
        return BatchAnswer(answer)
    try:
        results = orjson.loads(answer.detail)["results"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        results = None
    if not isinstance(results, list) or len(results) != len(values):
        cause = Misconfiguration.UNEXPECTED_STATUS  # not the Loopgate API's batch answer: hold, do not guess
        return BatchAnswer(Answer(Verdict.MISCONFIGURED, 200, f"not a batch answer: {answer.detail[:300]}", cause))
    return BatchAnswer(Answer(Verdict.ACCEPTED, 200, ""), [_item_answer(item) for item in results])


def _count(answer: Answer) -> None:
    if answer.verdict is Verdict.ACCEPTED:
        metrics.EXCEPTIONS_DELIVERED.labels(str(answer.status)).inc()
    elif answer.verdict is Verdict.REJECTED:
        metrics.EXCEPTIONS_DELIVERY_FAILED.labels("rejected").inc()


async def deliver_batch(
    post: Callable[[list[int]], Awaitable[BatchAnswer]],
    post_single: Callable[[int], Awaitable[Answer]],
    count: int,
    gate: DeliveryGate,
    *,
    initial_backoff: float,
    max_backoff: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[Answer]:
    """Deliver `count` records (`post(indices)` sends those records as one batch) until the API has
    accepted or rejected each for good: each record's answer, in order. Records the API asks for
    again are sent again together; a batch refused whole is sent one record at a time
    (`post_single`). Retries forever otherwise (cancel the task to stop)."""
    answers: list[Answer | None] = [None] * count
    pending = list(range(count))
    attempt = 0
    while pending:
        async with gate.turn():
            reply = await post(pending)
            gate.observe(reply.answer)
        whole = reply.answer
        if reply.items is not None:
            again = []
            for index, item in zip(pending, reply.items, strict=True):
                if item.verdict is Verdict.RETRY:
                    again.append(index)
                else:
                    answers[index] = item
                    _count(item)
            if not again:
                break
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels("server_error").inc(len(again))
            pending = again
        elif whole.verdict is Verdict.REJECTED:
            for index in pending:
                answers[index] = await deliver(
                    lambda index=index: post_single(index),  # type: ignore[misc]
                    gate,
                    initial_backoff=initial_backoff,
                    max_backoff=max_backoff,
                    sleep=sleep,
                )
            break
        elif whole.verdict is Verdict.MISCONFIGURED:
            unavailable = whole.cause is Misconfiguration.CONNECTION_REFUSED
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels("unavailable" if unavailable else "misconfigured").inc()
            continue  # the closed gate paces the next try
        else:
            reason = "unavailable" if whole.status is None else ("throttled" if whole.status < 500 else "server_error")
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels(reason).inc()
            if not gate.is_open:
                continue
        attempt += 1
        await sleep(backoff_seconds(attempt, initial=initial_backoff, maximum=max_backoff))
    return [a for a in answers if a is not None]
