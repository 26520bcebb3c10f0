"""Webhook signatures, following the Standard Webhooks scheme (standardwebhooks.com): a receiver
checks that a notification comes from Loopgate, unchanged and recent, with the secret it shares
with us. Pure functions; the relay adds the headers to each attempt (a retry keeps its id).

    webhook-id:         the notification's stable id (a receiver dedupes on it)
    webhook-timestamp:  Unix seconds when this attempt was signed
    webhook-signature:  v1,<base64 of HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>

The secret is written `whsec_<base64>` (the prefix is optional), at least 24 bytes once decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24


def parse_secret(text: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret, or ValueError saying what is wrong (never the
    secret itself)."""
    value = text.strip()
    if value.startswith(SECRET_PREFIX):
        value = value[len(SECRET_PREFIX) :]
    if not value:
        raise ValueError("the secret is empty")
    try:
        key = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret must be whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must decode to at least {MIN_SECRET_BYTES} bytes (it has {len(key)})")
    return key


def signature_headers(*, key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers that sign `body` as message `message_id` at `timestamp` (Unix seconds)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }
