"""The notifications file is loaded strictly: hostile values are refused, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopgate.resolution_api.notifications.config import NotificationsConfigError, load_notifications

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
    config, urls = load_notifications(path)
    assert urls == {
        "hook": "https://hooks.example/loopgate",
        "chat": "https://hooks.slack.example/T/B/X",
        "am": "http://alertmanager:9093",
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
    ],
)
def test_a_hostile_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(NotificationsConfigError) as caught:
        load(tmp_path, text)
    assert named in str(caught.value)
