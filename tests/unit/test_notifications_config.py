"""The notifications file is loaded strictly: hostile values are refused, naming the key; a
webhook's signing secret comes from a file or an environment variable, never the file itself."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from loopgate.resolution_api.notifications.config import Endpoint, NotificationsConfigError, load_notifications

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()

GOOD = """
[receivers.hook]
kind = "webhook"
url = "https://hooks.example/loopgate"
[queues.default]
receivers = ["hook"]
min_severity = "high"
[[queues.default.escalation]]
after_seconds = 900
receivers = ["hook"]
"""


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    load_notifications(path)


def test_a_good_file_loads_with_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "slack-url"
    secret.write_text("https://hooks.slack.example/T/B/X\n")
    monkeypatch.setenv("AM_URL", "http://alertmanager:9093")
    text = GOOD + f'[receivers.chat]\nkind = "slack"\nurl_file = "{secret}"\n'
    text += '[receivers.am]\nkind = "alertmanager"\nurl_env = "AM_URL"\n'
    path = tmp_path / "n.toml"
    path.write_text(text)
    config, endpoints = load_notifications(path)
    assert endpoints == {
        "hook": Endpoint("https://hooks.example/loopgate"),
        "chat": Endpoint("https://hooks.slack.example/T/B/X"),
        "am": Endpoint("http://alertmanager:9093"),
    }
    assert config.queue("team-without-its-own").receivers == ["hook"]  # the default queue's


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (GOOD + "[surprise]\nx = 1\n", "surprise"),
        (GOOD.replace('kind = "webhook"', 'kind = "webhook"\ncolour = "red"'), "receivers.hook.colour"),
        (GOOD.replace("https://hooks.example/loopgate", "ftp://hooks.example"), "receivers.hook"),
        (GOOD.replace("https://hooks.example/loopgate", "not a url"), "url"),
        (GOOD.replace("after_seconds = 900", "after_seconds = -5"), "queues.default.escalation.0.after_seconds"),
        (GOOD.replace('kind = "webhook"', 'kind = "webhook"\ntimeout_seconds = -1'), "receivers.hook.timeout_seconds"),
        (GOOD.replace('min_severity = "high"', 'min_severity = "urgent"'), "queues.default.min_severity"),
        (GOOD.replace('receivers = ["hook"]\nmin', 'receivers = ["nobody"]\nmin'), "queues.default.receivers.0"),
        (GOOD.replace('kind = "webhook"', 'kind = "pager"'), "receivers.hook.kind"),
        (GOOD.replace('url = "https://hooks.example/loopgate"', 'url_env = "LOOPGATE_TEST_UNSET_URL"'), "url_env"),
        (GOOD.replace('url = "https://hooks.example/loopgate"', 'url_file = "/nonexistent/secret"'), "url_file"),
        (GOOD.replace('url = "https://hooks.example/loopgate"', ""), "receivers.hook"),
        ("[receivers\n", "notifications.toml"),
        (GOOD.replace('kind = "webhook"', 'kind = "webhook"\nfiring_hold_seconds = 1e300'), "firing_hold_seconds"),
        (GOOD.replace('kind = "webhook"', 'kind = "webhook"\nurl_env = "NOT A NAME"'), "receivers.hook.url_env"),
    ],
)
def test_a_hostile_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(NotificationsConfigError) as caught:
        load(tmp_path, text)
    assert named in str(caught.value)


def _signed(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "notifications.toml"
    path.write_text(GOOD.replace('kind = "webhook"', f'kind = "webhook"\n{lines}'))
    return path


def test_a_webhook_secret_is_read_from_a_file_or_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "hook-secret"
    secret.write_text(SECRET + "\n")
    _, endpoints = load_notifications(_signed(tmp_path, f'secret_file = "{secret}"'))
    assert endpoints["hook"].secret == KEY
    monkeypatch.setenv("HOOK_SECRET", base64.b64encode(KEY).decode())  # the whsec_ prefix is optional
    _, endpoints = load_notifications(_signed(tmp_path, 'secret_env = "HOOK_SECRET"'))
    assert endpoints["hook"].secret == KEY
    assert SECRET not in repr(endpoints) and str(KEY) not in repr(endpoints)


@pytest.mark.parametrize(
    ("secret", "lines", "named"),
    [
        (None, f'secret = "{SECRET}"', "secret: never written in this file"),
        (None, 'secret_file = "/nonexistent/hook-secret"', "receivers.hook.secret_file: /nonexistent/hook-secret"),
        ("", "secret_file = ", "receivers.hook.secret_file"),
        ("whsec_", "secret_file = ", "the secret is empty"),
        ("   \n", "secret_file = ", "the secret is empty"),
        ("whsec_not*base64!", "secret_file = ", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "secret_file = ", "at least 24 bytes"),
        (None, 'secret_env = "LOOPGATE_TEST_UNSET_SECRET"', "receivers.hook.secret_env"),
        (None, 'secret_env = "A"\nsecret_file = "/x"', "at most one of secret_env, secret_file"),
    ],
)
def test_a_hostile_secret_is_refused_at_start_naming_the_key_and_never_showing_it(
    tmp_path: Path, secret: str | None, lines: str, named: str
) -> None:
    if secret is not None:
        path = tmp_path / "hook-secret"
        path.write_text(secret)
        lines += f'"{path}"'
    with pytest.raises(NotificationsConfigError) as caught:
        load_notifications(_signed(tmp_path, lines))
    assert named in str(caught.value)
    assert SECRET not in str(caught.value) and "not*base64" not in str(caught.value)
