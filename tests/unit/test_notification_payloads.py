"""Text is escaped for where it goes (issue 23): every text of the record is data in Slack's
mrkdwn (`&`, `<`, `>` escaped, one line, so `<!channel>` and forged links stay text), links carry
the exception id percent-encoded, and alerts' labels and annotations stay on one line."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import unquote

import pytest

from loopgate.common.text import one_line
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.payloads import Told, exception_url, render

PUBLIC = "https://loopgate.example"
AT = dt.datetime(2026, 11, 29, 8, 30, tzinfo=dt.UTC)
HOSTILE = [
    "<!channel>",
    "<!here|here> <@U012AB3CD> <#C123>",
    "<https://evil.example|Loopgate: sign in again>",
    "a & b &amp; <b>bold</b> </script><script>alert(1)</script>",
    "line one\nFAKE HEADLINE\r\n[CRITICAL] spoofed\u2028and\u2029more\x00nul\x1b[31mred",
    "\u202eevil-reversed\u2066isolate\u2069",
    "pipe | and > and < end",
]


def exception(text: str, **overrides: Any) -> ExceptionRow:
    values: dict[str, Any] = {
        "id": f"exc/{text}?x=1#frag",
        "fingerprint": f"rule:{text}",
        "rule_id": f"rule{text}",
        "severity": "critical",
        "source": f"src{text}",
        "subject": f"subj{text}",
        "client_id": f"client{text}",
        "queue": f"queue{text}",
        "summary": f"summary {text}",
        "status": "open",
        "assignee": None,
        "occurrences": 1,
        "first_seen": AT,
        "resolved_at": None,
    }
    values.update(overrides)
    return ExceptionRow(**values)


def told(event: str = "opened", **overrides: Any) -> Told:
    return Told(
        **{
            "notification_id": "00000000-0000-0000-0000-000000000001",
            "event": event,
            "receiver": "r",
            "at": AT,
            **overrides,
        }
    )


def slack_text(row: ExceptionRow, t: Told | None = None) -> str:
    body = json.loads(render(row, t or told(), kind="slack", public_url=PUBLIC, firing_hold_seconds=3600))
    text: str = body["text"]
    return text


@pytest.mark.parametrize("text", HOSTILE)
def test_no_text_of_the_record_becomes_slack_markup(text: str) -> None:
    row = exception(text)
    message = slack_text(row)
    # the one link is ours; every other < or > in the message is escaped
    links = re.findall(r"<([^<>]*)>", message)
    assert len(links) == 1, message
    url, _, label = links[0].partition("|")
    assert url == exception_url(PUBLIC, row.id)
    assert "|" not in url and "<" not in label and ">" not in label
    assert "<!" not in message and "<http" not in message.replace(f"<{PUBLIC}", "")
    # three lines: the headline, the summary, the link; data adds none, nor any control character
    assert message.count("\n") == 2
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]", message)


def test_slack_escaping_follows_slacks_rules_and_keeps_the_text_readable() -> None:
    message = slack_text(exception("", summary="Bid <5> & cap <!channel> <https://evil.example|x>", client_id="a&b"))
    assert "Bid &lt;5&gt; &amp; cap &lt;!channel&gt; &lt;https://evil.example|x&gt;" in message
    assert "(a&amp;b, queue queue)" in message


def test_escalation_and_sla_headlines_are_escaped_too() -> None:
    row = exception("<!channel>", status="<!here>", assignee="<@U1>")
    assert "<!" not in slack_text(row, told(level=2))
    assert "<!" not in slack_text(row, told(event="sla_breached", sla="<!channel>"))


def test_links_carry_the_exception_id_percent_encoded() -> None:
    exception_id = "exc/../../admin?x=<1>&y=|#top %2F"
    url = exception_url(PUBLIC, exception_id)
    assert url.startswith(f"{PUBLIC}/console/exceptions/")
    tail = url.removeprefix(f"{PUBLIC}/console/exceptions/")
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]+", tail) and unquote(tail) == exception_id
    webhook = json.loads(
        render(exception("", id=exception_id), told(), kind="webhook", public_url=PUBLIC, firing_hold_seconds=1)
    )
    assert webhook["data"]["url"] == url and webhook["data"]["exception_id"] == exception_id
    [alert] = json.loads(
        render(exception("", id=exception_id), told(), kind="alertmanager", public_url=PUBLIC, firing_hold_seconds=1)
    )
    assert alert["generatorURL"] == url and alert["annotations"]["url"] == url


@pytest.mark.parametrize("text", HOSTILE)
def test_alert_labels_and_annotations_stay_on_one_line(text: str) -> None:
    [alert] = json.loads(
        render(exception(text), told(), kind="alertmanager", public_url=PUBLIC, firing_hold_seconds=3600)
    )
    for value in [*alert["labels"].values(), *alert["annotations"].values()]:
        assert value == one_line(value, len(value) + 1), value


def test_the_webhook_carries_the_record_as_data_unchanged() -> None:
    text = HOSTILE[4]
    body = json.loads(render(exception(text), told(), kind="webhook", public_url=PUBLIC, firing_hold_seconds=1))
    assert body["data"]["summary"] == f"summary {text}"  # JSON escapes it; the receiver decides how to show it


def test_a_huge_summary_is_cut_in_slack() -> None:
    message = slack_text(exception("", summary="<" * 100_000))
    assert len(message) < 20_000 and "<<" not in message
