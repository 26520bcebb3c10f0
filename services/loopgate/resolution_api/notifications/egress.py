"""How a notification leaves: one POST that follows no redirect (a 3xx is an answer, reported as
the receiver's problem, never followed), reads at most a bounded head of the answer (the rest is
never read: the connection is closed), and reads the receiver's `Retry-After`, bounded."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from dataclasses import dataclass

import aiohttp

from loopgate.common.text import one_line


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    head: bytes  # at most max_bytes of the body
    retry_after: str | None
    location: str | None


async def post(
    http: aiohttp.ClientSession, url: str, *, body: bytes, headers: dict[str, str], max_bytes: int
) -> Answer:
    """POST `body` (the caller bounds the time); aiohttp.ClientError or OSError when no answer came."""
    async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
        head = await response.content.read(max_bytes) if max_bytes else b""
        # leaving the block without reading the rest closes the connection: nothing more is read
        return Answer(
            status=response.status,
            head=head[:max_bytes],
            retry_after=response.headers.get("Retry-After"),
            location=response.headers.get("Location"),
        )


def retry_after_seconds(value: str | None, *, now: dt.datetime, cap: float) -> float | None:
    """How long the receiver asked us to wait (RFC 9110: delay-seconds or an HTTP date), at most
    `cap`; None when it asked nothing usable (absent, garbage, negative, a date in the past)."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        return min(float(int(text[:12])), cap)  # 12 digits are already far past any cap
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # RFC 9110 dates are GMT
    seconds = (when - now).total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, cap)


def answer_text(head: bytes, limit: int = 200) -> str:
    """What the receiver said, for a reason column or a log line: one line, bounded."""
    return one_line(head.decode("utf-8", "replace"), limit).strip()
