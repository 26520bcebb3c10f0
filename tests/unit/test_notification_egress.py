"""The pure parts of careful egress: a receiver's Retry-After (seconds or an HTTP date) is read
within bounds, anything else is ignored; the webhook signature is the one the `standardwebhooks`
package (an implementation not ours) verifies, and a secret is parsed strictly."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from loopgate.resolution_api.notifications.egress import answer_text, retry_after_seconds
from loopgate.resolution_api.notifications.signing import parse_secret, signature_headers

NOW = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
KEY = bytes(range(7, 39))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("99999999999999999999999999", 600.0),  # huge: the cap
        ("Sun, 29 Nov 2026 08:00:30 GMT", 30.0),  # an HTTP date, 30 s on
        ("Sunday, 29-Nov-26 08:01:00 GMT", 60.0),  # the obsolete RFC 850 form
        ("Sun, 29 Nov 2026 09:00:00 GMT", 600.0),  # an hour on: the cap
    ],
)
def test_retry_after_is_read_in_both_forms_within_the_cap(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, now=NOW, cap=600) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "-5",
        "1.5",
        "1e9",
        "soon",
        "\u0663",  # an Arabic-Indic digit is not delay-seconds
        "Sun, 29 Nov 2026 07:59:00 GMT",  # in the past
        "Mon, 32 Foo 99999 25:61:61 GMT",
        "x" * 10_000,
        "inf",
        "nan",
    ],
)
def test_retry_after_garbage_negative_or_past_is_ignored(value: str | None) -> None:
    assert retry_after_seconds(value, now=NOW, cap=600) is None


def test_the_signature_is_what_standard_webhooks_verifies() -> None:
    body = b'{"id":"n-1","data":{"summary":"caf\xc3\xa9 <!channel>"}}'
    timestamp = int(dt.datetime.now(dt.UTC).timestamp())
    headers = signature_headers(key=KEY, message_id="n-1", timestamp=timestamp, body=body)
    secret = "whsec_" + base64.b64encode(KEY).decode()
    assert Webhook(secret).verify(body, headers)["id"] == "n-1"
    assert (
        Webhook(secret).sign("n-1", dt.datetime.fromtimestamp(timestamp, dt.UTC), body) == headers["webhook-signature"]
    )
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        ("  \n", "empty"),
        ("whsec_***", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "at least 24 bytes"),
    ],
)
def test_a_bad_secret_is_refused_saying_why_but_not_what(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_secret(text)
    secret = text.strip().removeprefix("whsec_")
    assert not secret or secret not in str(caught.value)


def test_a_secret_with_or_without_its_prefix_or_padding_gives_the_same_key() -> None:
    encoded = base64.b64encode(KEY).decode()
    assert parse_secret(f"whsec_{encoded}\n") == parse_secret(encoded) == parse_secret(encoded.rstrip("=")) == KEY


def test_what_a_receiver_said_is_one_bounded_line() -> None:
    assert (
        answer_text(b"bad\r\nX-Forged: 1\x00\xff" + b"y" * 500, limit=30)
        == "bad  X-Forged: 1 \ufffd" + "y" * 11 + "\u2026"
    )


def test_the_readmes_verification_examples_accept_our_signature_and_refuse_a_forged_one() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**Signed webhooks.**") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("\n```", section.index("```python"))
    ]
    secret = "whsec_" + base64.b64encode(KEY).decode()
    example: dict[str, Any] = {"LOOPGATE_WEBHOOK_SECRET": secret}
    exec(compile(code, "README.md", "exec"), example)  # our own README's example, run as written
    body = b'{"id":"n-2","type":"loopgate.exception.opened"}'
    headers = signature_headers(key=KEY, message_id="n-2", timestamp=int(time.time()), body=body)
    assert example["loopgate_notification"](body, headers)["id"] == "n-2"
    assert example["verified"](body, headers, secret) is True
    assert example["verified"](body.replace(b"n-2", b"n-3"), headers, secret) is False
    stale = signature_headers(key=KEY, message_id="n-2", timestamp=int(time.time()) - 3600, body=body)
    assert example["verified"](body, stale, secret) is False
