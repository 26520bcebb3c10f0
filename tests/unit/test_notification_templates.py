"""Receivers' templates (issue 28): Jinja2 in the immutable sandbox, checked against a sample
exception at start. A syntax error, an undefined variable, access to internals, a huge output
or a value built past the bound refuses the start, naming the receiver and the line; escaping
is the channel's (HTML email autoescaped, chat values escaped for mrkdwn, PagerDuty's and
Opsgenie's texts on one line and cut to their limits). The new kinds' keys are strict too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loopgate.resolution_api.notifications.config import Endpoint, NotificationsConfigError, load_notifications
from loopgate.resolution_api.notifications.payloads import Told, render
from tests.unit.test_notification_payloads import AT, HOSTILE, PUBLIC, exception

PD = '[receivers.pd]\nkind = "pagerduty"\nkey_env = "PD_KEY"\n'
CHAT = '[receivers.chat]\nkind = "slack"\nurl = "https://hooks.slack.example/x"\n'
MAIL = """[receivers.mail]
kind = "email"
[receivers.mail.smtp]
host = "smtp.example.com"
from_address = "Loopgate <loopgate@example.com>"
to = ["oncall@example.com"]
"""


def load(tmp_path: Path, text: str, template: str | None = None, receiver: str = "pd") -> dict[str, Endpoint]:
    if template is not None:
        (tmp_path / "t.j2").write_text(template)
        text = text.replace(
            f"[receivers.{receiver}]\n", f'[receivers.{receiver}]\ntemplate_file = "{tmp_path / "t.j2"}"\n', 1
        )
        if receiver == "mail":
            text = text.replace(
                "[receivers.mail.smtp]", f'template_file = "{tmp_path / "t.j2"}"\n[receivers.mail.smtp]', 1
            )
            text = text.replace(f'[receivers.mail]\ntemplate_file = "{tmp_path / "t.j2"}"\n', "[receivers.mail]\n", 1)
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    _, endpoints = load_notifications(path)
    return dict(endpoints)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY", "R0UTINGKEY0000000000000000000000")


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{ exception.summary ", r"receivers\.pd\.template_file \(.*t\.j2\): line 1: unexpected end of template"),
        (
            "line one\n{{ nobody_knows }}",
            r"receivers\.pd\.template_file \(.*\): line 2: UndefinedError: 'nobody_knows' is undefined",
        ),
        ("{{ exception.nope }}", r"line 1: UndefinedError: 'dict object' has no attribute 'nope'"),
        (
            "a\nb\n{{ exception.__class__.__mro__ }}",
            r"line 3: SecurityError: access to attribute '__class__' of 'dict' object is unsafe",
        ),
        ("{{ url.__class__.__base__.__subclasses__() }}", r"line 1: (SecurityError|UndefinedError)"),
        ("{{ exception.update(id='x') }}", r"line 1: SecurityError: .*update"),
        ("{{ ''.join.__self__ }}", r"line 1: (SecurityError|UndefinedError)"),
        ("{{ range.__globals__ }}", r"line 1: (SecurityError|UndefinedError)"),
        ("{% raise %}", r"line 1: "),
        ("{{ 1 / 0 }}", r"line 1: ZeroDivisionError"),
        ("{{ 'x' * 100000000 }}", r"line 1: SecurityError: multiplying past"),
        ("{{ [1] * 100000000 }}", r"line 1: SecurityError: multiplying past"),
        ("{{ 9 ** 9999999 }}", r"line 1: SecurityError: a power above 64"),
        ("{{ '%0999999999d' % 1 }}", r"line 1: SecurityError: string formatting"),
        ("{{ 'x'.ljust(999999999) }}", r"line 1: SecurityError: a number argument"),
        ("{{ 'x'|center(999999999) }}", r"line 1: .*(no filter named 'center'|center)"),
        (
            "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
            r"line 1: SecurityError: range\(\) of 1000 steps is over",
        ),
    ],
)
def test_a_hostile_or_broken_template_refuses_the_start_naming_receiver_and_line(
    tmp_path: Path, template: str, said: str
) -> None:
    with pytest.raises(NotificationsConfigError) as err:
        load(tmp_path, PD, template)
    assert re.search(said, str(err.value)), str(err.value)
    assert str(err.value).startswith(f"{tmp_path / 'notifications.toml'}: receivers.pd.template_file")


def test_a_template_whose_output_is_huge_is_refused_and_a_real_one_is_cut(tmp_path: Path) -> None:
    with pytest.raises(NotificationsConfigError, match=r"receivers\.mail\.template_file .*renders more than 200000"):
        load(tmp_path, MAIL, "{% for i in range(9000) %}" + "y" * 100 + "{% endfor %}", receiver="mail")
    # the sample fits; a real summary that does not is cut at PagerDuty's limit, on one line
    endpoints = load(tmp_path, PD, "{{ exception.summary }}")
    row = exception("z")
    row.summary = "s\n" * 900
    told = Told(notification_id="n1", event="opened", receiver="pd", at=AT)
    body = json.loads(
        render(
            row, told, kind="pagerduty", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["pd"].templates
        )
    )
    assert len(body["payload"]["summary"]) == 1024 and "\n" not in body["payload"]["summary"]


@pytest.mark.parametrize("text", HOSTILE)
def test_html_email_autoescapes_and_chat_templates_escape_every_value(tmp_path: Path, text: str) -> None:
    endpoints = load(tmp_path, MAIL + CHAT, "<p>{{ exception.summary }}</p>", receiver="mail")
    (tmp_path / "c.j2").write_text("*{{ exception.summary }}* <{{ url }}|open>")
    endpoints |= load(
        tmp_path,
        CHAT.replace("[receivers.chat]\n", f'[receivers.chat]\ntemplate_file = "{tmp_path / "c.j2"}"\n'),
        receiver="chat",
    )
    row = exception(text)
    told = Told(notification_id="n1", event="opened", receiver="mail", at=AT)
    mail = json.loads(
        render(row, told, kind="email", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["mail"].templates)
    )
    inner = mail["html"].removeprefix("<p>").removesuffix("</p>")
    assert "<" not in inner and ">" not in inner
    assert "\n" not in mail["subject"] and "\r" not in mail["subject"]
    chat = json.loads(
        render(row, told, kind="slack", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["chat"].templates)
    )
    summary = chat["text"].split("*")[1]
    assert "<" not in summary and ">" not in summary and "\n" not in summary
    assert chat["text"].endswith("|open>") and chat["text"].count("<") == 1


def test_the_shipped_defaults_render_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OG_KEY", "og-key")
    text = PD + MAIL + '[receivers.og]\nkind = "opsgenie"\nkey_env = "OG_KEY"\n'
    endpoints = load(tmp_path, text)
    row = exception("q")
    told = Told(notification_id="n1", event="opened", receiver="mail", at=AT)
    mail = json.loads(
        render(row, told, kind="email", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["mail"].templates)
    )
    link = f"{PUBLIC}/console/exceptions/exc%2Fq%3Fx%3D1%23frag"
    assert mail["subject"] == "[Loopgate CRITICAL] ruleq opened (clientq)"
    assert link in mail["text"] and f'<a href="{link}">' in mail["html"]
    og = json.loads(
        render(
            row, told, kind="opsgenie", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["og"].templates
        )
    )
    assert og["action"] == "create" and og["alias"] == row.id and og["body"]["priority"] == "P1"
    assert len(og["body"]["message"]) <= 130
    assert endpoints["og"].url == "https://api.opsgenie.com"
    assert endpoints["pd"].url == "https://events.pagerduty.com/v2/enqueue"
    assert "R0UTING" not in render(
        row, told, kind="pagerduty", public_url=PUBLIC, firing_hold_seconds=1, templates=endpoints["pd"].templates
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (PD.replace('key_env = "PD_KEY"\n', ""), "receivers.pd: give exactly one of key_env, key_file"),
        (PD + 'key_file = "/k"\n', "give exactly one of key_env, key_file"),
        (
            PD.replace("PD_KEY", "NOT_SET_ANYWHERE"),
            "receivers.pd.key_env: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (PD + 'secret_env = "X"\n', "secret_env/secret_file: pagerduty is authenticated by its key"),
        (PD + 'subject_template = "x"\n', "subject_template: only for kind email, not pagerduty"),
        (CHAT + 'key_env = "PD_KEY"\n', "key_env: only for kind pagerduty or opsgenie, not slack"),
        (
            '[receivers.h]\nkind = "webhook"\nurl = "http://h.example"\ntemplate_file = "/t"\n',
            "template_file: only for kind",
        ),
        (MAIL.replace('to = ["oncall@example.com"]', 'to = ["not an address"]'), "is not an email address"),
        (MAIL.replace('to = ["oncall@example.com"]', "to = []"), "to"),
        (MAIL.replace('to = ["oncall@example.com"]', 'to = ["a@b.example\\r\\nBcc: x@evil.example"]'), "one line"),
        (
            MAIL.replace("[receivers.mail.smtp]", 'url = "http://x.example"\n[receivers.mail.smtp]'),
            "url: an email receiver has no URL",
        ),
        (
            MAIL.replace('host = "smtp.example.com"', 'host = "smtp.example.com"\nusername = "u"'),
            "username and a password",
        ),
        (
            MAIL.replace(
                'host = "smtp.example.com"',
                'host = "smtp.example.com"\nsecurity = "none"\nusername = "u"\npassword_env = "PD_KEY"',
            ),
            "never sent without TLS",
        ),
        (MAIL.replace('host = "smtp.example.com"', 'host = "smtp.example.com"\nport = 0'), "smtp.port"),
        (MAIL.replace('host = "smtp.example.com"', 'host = "smtp.example.com"\nstarttls = true'), "smtp.starttls"),
        (
            MAIL.replace('host = "smtp.example.com"', 'host = "smtp.example.com"\nca_file = "/no/such/ca.pem"'),
            "ca_file: /no/such/ca.pem does not exist",
        ),
        ('[receivers.mail]\nkind = "email"\n', "smtp: an email receiver needs its"),
        (
            PD + 'template_file = "/no/such/template.j2"\n',
            "receivers.pd.template_file: /no/such/template.j2: cannot be read (FileNotFoundError)",
        ),
        (
            MAIL.replace('kind = "email"', 'kind = "email"\nsubject_template = "{{ oops"'),
            "receivers.mail.subject_template: line 1",
        ),
    ],
)
def test_hostile_channel_settings_are_refused_naming_the_key(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(NotificationsConfigError) as err:
        load(tmp_path, text)
    assert said in str(err.value), str(err.value)
