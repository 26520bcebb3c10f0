"""Verified tokens are trusted for a short while without a database read, and forgotten on revoke."""

from __future__ import annotations

from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.access.tokens import Principal, TokenCache
from tests.fixtures.clock import FakeClock

ALICE = Principal(token_id="t1", name="alice", role=Role.OPERATOR)
BOT = Principal(token_id="t2", name="dispatcher", role=Role.SERVICE)


def test_a_verified_token_is_remembered_by_its_hash_until_the_ttl_passes() -> None:
    clock = FakeClock()
    cache = TokenCache(ttl=30, monotonic=clock.monotonic)
    cache.put("hash-a", ALICE)
    assert cache.get("hash-a") == ALICE
    assert cache.get("hash-b") is None
    clock.advance(30)
    assert cache.get("hash-a") == ALICE  # still within the ttl, to the second
    clock.advance(0.001)
    assert cache.get("hash-a") is None


def test_revoking_forgets_every_entry_of_that_token_only() -> None:
    cache = TokenCache(ttl=60)
    cache.put("hash-a", ALICE)
    cache.put("hash-b", BOT)
    cache.forget("t1")
    assert (cache.get("hash-a"), cache.get("hash-b")) == (None, BOT)


def test_a_zero_ttl_caches_nothing() -> None:
    cache = TokenCache(ttl=0)
    cache.put("hash-a", ALICE)
    assert cache.get("hash-a") is None
