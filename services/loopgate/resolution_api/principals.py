"""Who is calling: the principal behind a bearer token, and the short cache of verified tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass

from loopgate.resolution_api.permissions import Role


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str  # recorded as the actor in history and as the resolver in outcomes
    role: Role


class TokenCache:
    """Tokens verified in the last `ttl` seconds, by their hash (never the secret): spares the
    database a read on every request of a busy caller such as the dispatcher."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl > 0:
            if len(self._entries) > 10_000:  # a bound, not an LRU: tokens are few
                self._entries.clear()
            self._entries[token_hash] = (time.monotonic() + self.ttl, principal)

    def forget(self, token_id: str) -> None:
        self._entries = {h: e for h, e in self._entries.items() if e[1].token_id != token_id}
