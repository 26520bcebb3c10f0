"""What each answer of the API means to the dispatcher (services/dispatcher/delivery.py): the
record's fault (dead-letter it), a passing trouble (retry it), or the dispatcher's own
misconfiguration (hold everything, probe one at a time, resume when it works)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from loopgate.dispatcher.delivery import (
    Answer,
    BatchAnswer,
    DeliveryGate,
    GateState,
    Misconfiguration,
    Verdict,
    classify,
    deliver,
    deliver_batch,
    post_once,
)
from loopgate_tools.processes import free_port

ACCEPTED, RETRY, REJECTED, MISCONFIGURED = Verdict.ACCEPTED, Verdict.RETRY, Verdict.REJECTED, Verdict.MISCONFIGURED
M = Misconfiguration


@pytest.mark.parametrize(
    ("status", "verdict", "cause"),
    [
        (200, ACCEPTED, None),
        (201, ACCEPTED, None),
        (400, REJECTED, None),
        (409, REJECTED, None),
        (413, REJECTED, None),
        (422, REJECTED, None),
        (408, RETRY, None),
        (425, RETRY, None),
        (429, RETRY, None),
        (500, RETRY, None),
        (502, RETRY, None),
        (503, RETRY, None),
        (504, RETRY, None),
        (401, MISCONFIGURED, M.UNAUTHORIZED),
        (403, MISCONFIGURED, M.FORBIDDEN),
        (404, MISCONFIGURED, M.WRONG_URL),
        (405, MISCONFIGURED, M.WRONG_URL),
        (410, MISCONFIGURED, M.WRONG_URL),
        (301, MISCONFIGURED, M.WRONG_URL),
        (307, MISCONFIGURED, M.WRONG_URL),
        (308, MISCONFIGURED, M.WRONG_URL),
        (402, MISCONFIGURED, M.UNEXPECTED_STATUS),
        (407, MISCONFIGURED, M.UNEXPECTED_STATUS),
        (415, MISCONFIGURED, M.UNEXPECTED_STATUS),
        (418, MISCONFIGURED, M.UNEXPECTED_STATUS),
        (451, MISCONFIGURED, M.UNEXPECTED_STATUS),
        (101, MISCONFIGURED, M.UNEXPECTED_STATUS),
    ],
)
def test_each_status_has_one_verdict(status: int, verdict: Verdict, cause: Misconfiguration | None) -> None:
    assert classify(status) == (verdict, cause)


# --- the answers of real HTTP servers and of no server at all ------------------------------------


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    return runner, port


@pytest.fixture
async def api_stub() -> AsyncIterator[tuple[int, list[str]]]:
    """POST /v1/exceptions answers the status in the body; /moved redirects to a GET that would 'succeed'."""
    seen: list[str] = []

    async def create(request: web.Request) -> web.Response:
        seen.append("POST")
        return web.Response(status=int(await request.text()), text="the stub's answer")

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/v1/exceptions")

    async def listing(_request: web.Request) -> web.Response:
        seen.append("GET")
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_post("/v1/exceptions", create)
    app.router.add_get("/v1/exceptions", listing)
    app.router.add_post("/moved/v1/exceptions", moved)
    runner, port = await serve(app)
    yield port, seen
    await runner.cleanup()


async def post(url: str, value: bytes = b"201") -> Answer:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        return await post_once(client, url, value)


async def test_a_400_or_422_for_a_record_is_rejected_with_the_apis_answer(api_stub: tuple[int, list[str]]) -> None:
    port, _ = api_stub
    for status in (400, 422):
        assert await post(f"http://127.0.0.1:{port}/v1/exceptions", str(status).encode()) == Answer(
            REJECTED, status, "the stub's answer"
        )


async def test_a_path_without_the_create_route_is_a_wrong_url(api_stub: tuple[int, list[str]]) -> None:
    port, _ = api_stub
    answer = await post(f"http://127.0.0.1:{port}/api/v1/exceptions")
    assert (answer.verdict, answer.status, answer.cause) == (MISCONFIGURED, 404, M.WRONG_URL)


async def test_a_redirect_is_not_followed_into_a_get_that_would_look_like_success(
    api_stub: tuple[int, list[str]],
) -> None:
    port, seen = api_stub
    answer = await post(f"http://127.0.0.1:{port}/moved/v1/exceptions")
    assert (answer.verdict, answer.status, answer.cause) == (MISCONFIGURED, 301, M.WRONG_URL)
    assert answer.detail == "redirected to /v1/exceptions"
    assert seen == []


async def test_nothing_listening_is_connection_refused() -> None:
    answer = await post(f"http://127.0.0.1:{free_port()}/v1/exceptions")
    assert (answer.verdict, answer.status, answer.cause) == (MISCONFIGURED, None, M.CONNECTION_REFUSED)


async def test_a_host_that_does_not_resolve_is_a_dns_misconfiguration() -> None:
    answer = await post("http://loopgate-api.invalid/v1/exceptions")
    assert (answer.verdict, answer.cause) == (MISCONFIGURED, M.DNS)


async def test_a_url_without_http_is_a_wrong_url() -> None:
    for url in ("loopgate-api:8000/v1/exceptions", "ftp://127.0.0.1/v1/exceptions"):
        answer = await post(url)
        assert (answer.verdict, answer.cause) == (MISCONFIGURED, M.WRONG_URL), url


async def test_https_against_a_plain_http_port_is_a_tls_misconfiguration(api_stub: tuple[int, list[str]]) -> None:
    port, seen = api_stub
    answer = await post(f"https://127.0.0.1:{port}/v1/exceptions")
    assert (answer.verdict, answer.cause) == (MISCONFIGURED, M.TLS)
    assert seen == []


@pytest.fixture
def untrusted_tls(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate (the dispatcher trusts only the system's CAs)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command for a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_a_certificate_the_dispatcher_does_not_trust_is_a_tls_misconfiguration(
    untrusted_tls: ssl.SSLContext,
) -> None:
    async def create(_request: web.Request) -> web.Response:
        return web.json_response({}, status=201)

    app = web.Application()
    app.router.add_post("/v1/exceptions", create)
    runner, port = await serve(app, untrusted_tls)
    try:
        answer = await post(f"https://127.0.0.1:{port}/v1/exceptions")
    finally:
        await runner.cleanup()
    assert (answer.verdict, answer.cause) == (MISCONFIGURED, M.TLS)
    assert "CERTIFICATE_VERIFY_FAILED" in answer.detail


# --- the gate: a misconfiguration holds every record and collapses to one probe ------------------


class FakeApi:
    """Answers every post with `status` (MISCONFIGURED answers while `cause` is set); counts posts and
    the most that were in flight at once."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.posts = self.in_flight = self.most_in_flight = 0

    async def post(self) -> Answer:
        self.posts += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # a request takes a turn of the loop
            verdict, cause = classify(self.status)
            return Answer(verdict, self.status, f"answered {self.status}", cause)
        finally:
            self.in_flight -= 1


class Clock:
    """An injected sleep: records each delay and only yields to the loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def gate_with_log(clock: Clock) -> tuple[DeliveryGate, list[Misconfiguration | None]]:
    changes: list[Misconfiguration | None] = []

    def listener(_previous: GateState, state: GateState) -> None:
        changes.append(state.cause)

    return DeliveryGate(initial_backoff=0.1, max_backoff=2.0, listener=listener, sleep=clock.sleep), changes


async def deliver_all(api: FakeApi, gate: DeliveryGate, clock: Clock, n: int) -> list[asyncio.Task[Answer]]:
    return [
        asyncio.ensure_future(deliver(api.post, gate, initial_backoff=0.1, max_backoff=2.0, sleep=clock.sleep))
        for _ in range(n)
    ]


async def until(condition: Callable[[], bool], turns: int = 10_000) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_wrong_token_holds_every_record_with_one_probe_at_a_time_and_resumes_when_it_works() -> None:
    clock = Clock()
    api = FakeApi(401)
    gate, changes = gate_with_log(clock)
    tasks = await deliver_all(api, gate, clock, 32)
    await until(lambda: api.posts >= 32 + 20)  # every record tried once, then 20 probes
    assert not any(t.done() for t in tasks)
    assert gate.state.cause is M.UNAUTHORIZED
    assert changes == [M.UNAUTHORIZED]  # once, not once per record or per probe
    probes_from = api.most_in_flight
    api.most_in_flight = 0
    await until(lambda: api.posts >= 32 + 40)
    assert (probes_from, api.most_in_flight) == (32, 1)  # 32 in flight at first, then one probe at a time
    assert max(clock.delays) <= 2.0  # the probe's backoff is capped
    assert clock.delays[-1] >= 1.0  # and grew to the cap

    api.status = 201  # the token was created meanwhile
    answers = await asyncio.gather(*tasks)
    assert [a.verdict for a in answers] == [ACCEPTED] * 32
    assert changes == [M.UNAUTHORIZED, None]
    assert gate.is_open


async def test_a_record_rejected_while_the_gate_is_closed_is_rejected_but_does_not_open_it() -> None:
    # A 400 or 413 may be answered before the token is even looked at: it proves nothing about it.
    clock = Clock()
    gate, changes = gate_with_log(clock)
    gate.close(M.UNAUTHORIZED, "answered 401")
    answer = await deliver(FakeApi(422).post, gate, initial_backoff=0.1, max_backoff=2.0, sleep=clock.sleep)
    assert answer.verdict is REJECTED
    assert changes == [M.UNAUTHORIZED]


async def test_a_400_or_422_is_rejected_at_the_first_answer_and_the_gate_stays_open() -> None:
    for status in (400, 422):
        clock = Clock()
        api = FakeApi(status)
        gate, changes = gate_with_log(clock)
        answer = await deliver(api.post, gate, initial_backoff=0.1, max_backoff=2.0, sleep=clock.sleep)
        assert (answer.verdict, answer.status, api.posts, changes, clock.delays) == (REJECTED, status, 1, [], [])


async def test_a_5xx_is_retried_per_record_with_backoff_and_leaves_the_gate_open() -> None:
    clock = Clock()
    api = FakeApi(503)
    gate, changes = gate_with_log(clock)
    task = asyncio.ensure_future(deliver(api.post, gate, initial_backoff=0.1, max_backoff=2.0, sleep=clock.sleep))
    await until(lambda: api.posts >= 10)
    api.status = 201
    answer = await task
    assert answer.verdict is ACCEPTED
    assert changes == []
    assert len(clock.delays) == api.posts - 1
    assert max(clock.delays) <= 2.0


async def test_a_change_of_cause_is_reported_once_each() -> None:
    clock = Clock()
    gate, changes = gate_with_log(clock)
    for status in (401, 401, 404, 404, 401):
        verdict, cause = classify(status)
        gate.observe(Answer(verdict, status, "", cause))
    gate.observe(Answer(ACCEPTED, 201, ""))
    gate.observe(Answer(ACCEPTED, 201, ""))
    assert changes == [M.UNAUTHORIZED, M.WRONG_URL, M.UNAUTHORIZED, None]


# --- batches ---------------------------------------------------------------------------------


class BatchApi:
    """Answers batches from a script: each call pops the next answer maker."""

    def __init__(self, *replies: Callable[[list[int]], BatchAnswer]) -> None:
        self.replies = list(replies)
        self.sent: list[list[int]] = []
        self.singles: list[int] = []

    async def post(self, indices: list[int]) -> BatchAnswer:
        self.sent.append(list(indices))
        return self.replies.pop(0)(indices)

    async def post_single(self, index: int) -> Answer:
        self.singles.append(index)
        return Answer(REJECTED, 422, "bad") if index == 1 else Answer(ACCEPTED, 201, "")


def items(*statuses: int) -> Callable[[list[int]], BatchAnswer]:
    def reply(indices: list[int]) -> BatchAnswer:
        assert len(indices) == len(statuses)
        answers = [Answer(*_verdict(s), str(s)) for s in statuses]
        return BatchAnswer(Answer(ACCEPTED, 200, ""), answers)

    return reply


def _verdict(status: int) -> tuple[Verdict, int]:
    return (ACCEPTED if status < 300 else REJECTED if status in (400, 409, 413, 422) else RETRY), status


def whole(status: int | None, verdict: Verdict, cause: Misconfiguration | None = None) -> Callable[..., BatchAnswer]:
    return lambda indices: BatchAnswer(Answer(verdict, status, "whole", cause))


async def deliver_scripted(api: BatchApi, gate: DeliveryGate | None = None, n: int = 3) -> list[Answer]:
    async def no_wait(_seconds: float) -> None:
        return None

    gate = gate or DeliveryGate(initial_backoff=0.01, max_backoff=0.01, sleep=no_wait)
    return await deliver_batch(
        api.post, api.post_single, n, gate, initial_backoff=0.01, max_backoff=0.01, sleep=no_wait
    )


async def test_each_record_of_a_batch_gets_its_own_verdict() -> None:
    api = BatchApi(items(201, 422, 200))
    answers = await deliver_scripted(api)
    assert [(a.verdict, a.status) for a in answers] == [(ACCEPTED, 201), (REJECTED, 422), (ACCEPTED, 200)]


async def test_only_the_records_the_api_asks_for_again_are_sent_again() -> None:
    api = BatchApi(items(201, 503, 200), items(201))
    answers = await deliver_scripted(api)
    assert api.sent == [[0, 1, 2], [1]]
    assert [a.status for a in answers] == [201, 201, 200]


async def test_a_batch_refused_whole_is_sent_one_record_at_a_time_so_only_the_bad_one_is_rejected() -> None:
    api = BatchApi(whole(413, REJECTED))
    answers = await deliver_scripted(api)
    assert api.singles == [0, 1, 2]
    assert [a.verdict for a in answers] == [ACCEPTED, REJECTED, ACCEPTED]


async def test_a_misconfigured_batch_holds_every_record_until_it_is_accepted() -> None:
    async def no_wait(_seconds: float) -> None:
        return None

    gate = DeliveryGate(initial_backoff=0.01, max_backoff=0.01, sleep=no_wait)
    api = BatchApi(
        whole(401, MISCONFIGURED, M.UNAUTHORIZED),
        whole(None, MISCONFIGURED, M.CONNECTION_REFUSED),
        items(201, 201, 201),
    )
    answers = await deliver_scripted(api, gate)
    assert api.sent == [[0, 1, 2]] * 3 and api.singles == []
    assert [a.verdict for a in answers] == [ACCEPTED] * 3
    assert gate.is_open


async def test_a_5xx_for_the_batch_retries_every_record() -> None:
    api = BatchApi(whole(503, RETRY), items(201, 201, 201))
    assert [a.status for a in await deliver_scripted(api)] == [201, 201, 201]
    assert api.sent == [[0, 1, 2], [0, 1, 2]]
