"""Delivering one exception record to the resolution API, and what each answer means.

2xx: accepted (201 created, 200 already known or grouped). 408, 429 and 5xx, or no answer at
all: try again later with capped exponential backoff. Any other 4xx: the API will never accept
this record as it is, so it is dead-lettered with the API's answer instead of blocking the
partition behind it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from enum import Enum

import aiohttp

from loopgate.common import metrics


class Verdict(Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    status: int | None
    detail: str


RETRYABLE_4XX = frozenset({408, 425, 429})


def classify(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.ACCEPTED
    if status in RETRYABLE_4XX or status >= 500:
        return Verdict.RETRY
    return Verdict.REJECTED


def backoff_seconds(attempt: int, *, initial: float, maximum: float) -> float:
    """Capped exponential backoff with full jitter (attempt counts from 1)."""
    ceiling = min(maximum, initial * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


async def post_once(client: aiohttp.ClientSession, url: str, value: bytes) -> Answer:
    try:
        async with client.post(url, data=value, headers={"content-type": "application/json"}) as response:
            detail = (await response.read())[:1000].decode(errors="replace")
            return Answer(classify(response.status), response.status, detail)
    except (aiohttp.ClientError, TimeoutError) as err:
        return Answer(Verdict.RETRY, None, f"{type(err).__name__}: {err}"[:300])


async def deliver(
    client: aiohttp.ClientSession, url: str, value: bytes, *, initial_backoff: float, max_backoff: float
) -> Answer:
    """Post until the API accepts or rejects the record for good; retries forever otherwise
    (cancel the task to stop: nothing is committed for an undelivered record)."""
    attempt = 0
    while True:
        answer = await post_once(client, url, value)
        if answer.verdict is Verdict.ACCEPTED:
            metrics.EXCEPTIONS_DELIVERED.labels(str(answer.status)).inc()
            return answer
        if answer.verdict is Verdict.REJECTED:
            metrics.EXCEPTIONS_DELIVERY_FAILED.labels("rejected").inc()
            return answer
        reason = "unavailable" if answer.status is None else ("throttled" if answer.status < 500 else "server_error")
        metrics.EXCEPTIONS_DELIVERY_FAILED.labels(reason).inc()
        attempt += 1
        await asyncio.sleep(backoff_seconds(attempt, initial=initial_backoff, maximum=max_backoff))
