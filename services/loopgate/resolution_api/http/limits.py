"""The API's door: limits every request body meets before anything reads it as JSON or asks who
sent it (a pure ASGI middleware, outside routing, authentication and FastAPI's parsing).

- Size: a Content-Length over `api_max_body_bytes` is a 413 without reading a byte of the body;
  a body that streams past it (chunked, or lying about its length) is a 413 as soon as it does.
- Depth: JSON nested deeper than MAX_JSON_DEPTH (arrays and objects, the outermost is level 1)
  is a 422 naming the limit. Deeper values could be stored but not answered (serializers give up
  at a few hundred levels, so every answer holding one was a 500).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopgate.common import metrics

MAX_JSON_DEPTH = 32

# A JSON string (escapes included), unrolled so the regex engine never backtracks per character.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in `body` (0 for a scalar), counted without parsing it;
    brackets inside strings do not count."""
    if not (b"[" in body or b"{" in body):
        return 0
    if b'"' in body:
        body = _JSON_STRING.sub(b'""', body)
    brackets = body.translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def value_depth(value: Any) -> int:
    """How deeply lists and objects nest in an already parsed JSON `value` (0 for a scalar), as
    json_depth counts them in bytes; without recursion, so no depth can exhaust the stack."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
    return deepest


class BodyTooLarge(Exception):
    pass


def _error(status: int, body: dict[str, Any]) -> list[Message]:
    content = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": content},
    ]


def _too_large(limit: int) -> list[Message]:
    metrics.API_REQUESTS_REFUSED.labels("body_too_large").inc()
    return _error(413, {"detail": f"request body over the limit of {limit} bytes (LOOPGATE_API_MAX_BODY_BYTES)"})


# Bodies that wrap other bodies (a batch of records) may nest up to this deep: each record in them
# is held to MAX_JSON_DEPTH on its own by its route, so a record too deep fails alone.
WRAPPER_DEPTH = {"/v1/exceptions/batch": 256}


def too_deep_body(depth: int) -> dict[str, Any]:
    """The 422 body for JSON nested deeper than MAX_JSON_DEPTH."""
    message = f"body: JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} levels are accepted"
    return {"detail": [{"loc": ["body"], "msg": message, "type": "json_too_deep"}], "message": message}


def _too_deep(depth: int) -> list[Message]:
    metrics.API_REQUESTS_REFUSED.labels("too_deep").inc()
    return _error(422, too_deep_body(depth))


class RequestLimits:
    """Pure ASGI middleware: the body limit (413) and the JSON depth limit (422), before parsing
    and authentication. `max_body_bytes()` is asked per request (settings are read at start)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes()
        declared = _content_length(scope)
        if declared is None:
            await self._send(send, _error(400, {"detail": "Content-Length must be a non-negative integer"}))
            return
        if declared > limit:
            await self._send(send, _too_large(limit))
            return
        try:
            body, disconnected = await _read_body(receive, limit)
        except BodyTooLarge:
            await self._send(send, _too_large(limit))
            return
        depth = json_depth(body)
        if depth > WRAPPER_DEPTH.get(scope.get("path", ""), MAX_JSON_DEPTH):
            await self._send(send, _too_deep(depth))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected is not None:
                    return disconnected
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _send(send: Send, messages: list[Message]) -> None:
        for message in messages:
            await send(message)


def _content_length(scope: Scope) -> int | None:
    """The declared length (0 when none is declared); None when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit() or len(text) > 20:
                return None
            return int(text)
    return 0


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The whole body, counted as it arrives; BodyTooLarge once it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message  # the client went away; the app sees it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
