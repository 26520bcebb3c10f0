"""A secured broker refuses a wrong password or an untrusted certificate, and every service says so
at start, naming the setting, within seconds (never a retry loop that looks like a hang)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loopgate.common.settings import Settings
from loopgate_tools.processes import settings_env
from tests.fixtures.kafka import SecuredKafka

pytestmark = pytest.mark.kafka


def start(settings: Settings, *command: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "loopgate.cli.main", *command],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done, time.monotonic() - began


def test_the_right_credentials_create_the_topics(secured_kafka: SecuredKafka) -> None:
    settings = Settings(**secured_kafka.settings(topic_prefix="secured-ok-"))  # type: ignore[arg-type]
    done, _ = start(settings, "topics", "create", "--with-upstream")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", [("topics", "create"), ("detector",), ("dispatcher",)])
def test_a_wrong_password_stops_the_start_naming_the_settings(
    secured_kafka: SecuredKafka, command: tuple[str, ...]
) -> None:
    settings = Settings(**secured_kafka.settings(kafka_sasl_password="wrong", api_token="t"))  # type: ignore[arg-type]
    done, seconds = start(settings, *command)
    assert done.returncode == 2, done.stderr
    assert "authentication failed for user 'loopgate' with SCRAM-SHA-512" in done.stderr
    assert "LOOPGATE_KAFKA_SASL_PASSWORD" in done.stderr and "Traceback" not in done.stderr
    assert seconds < 60


def test_an_untrusted_certificate_stops_the_start_naming_the_ca_setting(secured_kafka: SecuredKafka) -> None:
    settings = Settings(**secured_kafka.settings(kafka_ssl_cafile=secured_kafka.tls_dir / "other-ca.pem"))  # type: ignore[arg-type]
    done, seconds = start(settings, "topics", "create")
    assert done.returncode == 2, done.stderr
    assert "TLS certificate is not trusted" in done.stderr and "LOOPGATE_KAFKA_SSL_CAFILE" in done.stderr
    assert seconds < 60


def test_a_missing_ca_file_stops_the_start_before_any_connection(secured_kafka: SecuredKafka) -> None:
    settings = Settings(**secured_kafka.settings(kafka_ssl_cafile="/nonexistent/ca.pem"))  # type: ignore[arg-type]
    done, _ = start(settings, "topics", "create")
    assert done.returncode == 2
    assert "LOOPGATE_KAFKA_SSL_CAFILE: file /nonexistent/ca.pem does not exist" in done.stderr
