"""The console's bulk confirmation, bound to the exact set it counted (issue 23 item 5): step one
seals what it showed (the action, its decision and reason, and every exception's id with the
version it was counted at) into one form value signed with an HMAC keyed by the session's own
secret (the hash of its HTTP-only cookie, which the page and its scripts never see); step two does
exactly that, never the filter run again. A tampered set, a forged signature, another
session's seal or an old one is refused whole; each row whose version changed since it was
counted is reported for that row (bulk_work.work_set), the rest go on.

Nothing is stored, so any API replica confirms what another counted. The seal binds what was
confirmed; it is not what allows it: step two still runs with the session's role and scope."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from dataclasses import dataclass

import orjson

CONFIRM_SECONDS = 15 * 60  # a confirmation page older than this is counted again
_CONTEXT = b"loopgate-console-bulk:"
_MAX_SEALED_BYTES = 4 * 1024 * 1024  # what a seal may expand to: a bound, whatever is posted


class BadConfirmation(ValueError):
    """Not a confirmation this session's page was given, or too old; the message says which."""


@dataclass(frozen=True, slots=True)
class Confirmation:
    action: str
    decision: str
    reason: str
    versions: dict[str, int]  # exception id -> the version it was counted at
    issued_at: float  # seconds since the epoch


def _signature(key: str, payload: bytes) -> str:
    return hmac.new(key.encode("utf-8"), _CONTEXT + payload, hashlib.sha256).hexdigest()


def seal(confirmation: Confirmation, *, key: str) -> str:
    """The form value carrying `confirmation`, signed with the session's `key`."""
    body = [
        confirmation.action,
        confirmation.decision,
        confirmation.reason,
        confirmation.issued_at,
        sorted(confirmation.versions.items()),
    ]
    payload = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(body))).rstrip(b"=")
    return f"{payload.decode()}.{_signature(key, payload)}"


def unseal(value: str, *, key: str, now: float) -> Confirmation:
    """The confirmation a sealed value carries; BadConfirmation when this session did not seal it
    (the signature is checked before anything is decoded), when it is malformed, or when it is
    older than CONFIRM_SECONDS."""
    payload, dot, signature = value.rpartition(".")
    if not dot or not hmac.compare_digest(_signature(key, payload.encode("ascii", "replace")), signature):
        raise BadConfirmation("this confirmation was not made for your session, or was changed: review again")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)), _MAX_SEALED_BYTES)
    except (binascii.Error, zlib.error, ValueError):
        raise BadConfirmation("this confirmation cannot be read: review again") from None
    if inflater.unconsumed_tail:
        raise BadConfirmation("this confirmation is too large: review again")
    try:
        action, decision, reason, issued_at, pairs = orjson.loads(raw)
        versions = {str(i): int(v) for i, v in pairs if isinstance(i, str) and type(v) is int}
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise BadConfirmation("this confirmation cannot be read: review again") from None
    if not all(isinstance(x, str) for x in (action, decision, reason)) or type(issued_at) not in (int, float):
        raise BadConfirmation("this confirmation cannot be read: review again")
    if len(versions) != len(pairs):
        raise BadConfirmation("this confirmation cannot be read: review again")
    if not 0 <= now - issued_at <= CONFIRM_SECONDS:
        raise BadConfirmation("this confirmation is too old: review the bulk action again")
    return Confirmation(action=action, decision=decision, reason=reason, versions=versions, issued_at=issued_at)
