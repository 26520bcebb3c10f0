"""The LOOPGATE_KAFKA_* settings: every client's connection comes from `kafka_connection`, which
refuses a setting that cannot work with a message naming it (before any connection is tried)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loopgate.common.kafka import KafkaSettingsError, kafka_connection
from loopgate.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run(["bash", str(ROOT / "scripts" / "kafka.sh"), "certs", str(directory)], check=True)
    return directory


def sasl_ssl(pki: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "broker-1:9093,broker-2:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "loopgate",
        "kafka_sasl_password": "s3cret",
        "kafka_ssl_cafile": pki / "ca.pem",
    }
    values.update(overrides)
    return Settings(**values)


def refused(settings: Settings) -> KafkaSettingsError:
    with pytest.raises(KafkaSettingsError) as caught:
        kafka_connection(settings)
    return caught.value


def test_defaults_are_plaintext_to_the_local_broker() -> None:
    conn = kafka_connection(Settings())
    assert conn.client_kwargs() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert conn.faust_broker() == "kafka://127.0.0.1:9092"
    assert conn.faust_credentials() is None


def test_sasl_ssl_gives_every_client_the_same_credentials_and_tls_context(pki: Path) -> None:
    conn = kafka_connection(sasl_ssl(pki, kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="scram-sha-512"))
    options = conn.client_kwargs()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "loopgate",
        "s3cret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert conn.faust_broker() == "kafka://broker-1:9093;broker-2:9093"
    credentials = conn.faust_credentials()
    from faust.auth import SASLCredentials

    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in repr(conn)


def test_secrets_come_from_files_with_one_trailing_newline_ignored(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "user").write_text("loopgate\n")
    (tmp_path / "password").write_text("pa ss\r\n")
    conn = kafka_connection(
        sasl_ssl(
            pki,
            kafka_sasl_username="",
            kafka_sasl_password="",
            kafka_sasl_username_file=tmp_path / "user",
            kafka_sasl_password_file=tmp_path / "password",
        )
    )
    assert (conn.sasl_username, conn.sasl_password) == ("loopgate", "pa ss")


def test_mutual_tls_loads_the_client_certificate(pki: Path) -> None:
    conn = kafka_connection(
        Settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=pki / "ca.pem",
            kafka_ssl_certfile=pki / "client.pem",
            kafka_ssl_keyfile=pki / "client.key",
            kafka_ssl_check_hostname=False,
        )
    )
    assert conn.ssl_context is not None and not conn.ssl_context.check_hostname
    assert conn.client_kwargs()["security_protocol"] == "SSL"


@pytest.mark.parametrize(
    ("overrides", "setting", "says"),
    [
        ({"kafka_security_protocol": "SASL-SSL"}, "LOOPGATE_KAFKA_SECURITY_PROTOCOL", "is not one of"),
        ({"kafka_security_protocol": "TLS"}, "LOOPGATE_KAFKA_SECURITY_PROTOCOL", "is not one of"),
        ({"kafka_sasl_mechanism": ""}, "LOOPGATE_KAFKA_SASL_MECHANISM", "required with SASL_SSL"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "LOOPGATE_KAFKA_SASL_MECHANISM", "is not one of"),
        ({"kafka_sasl_username": ""}, "LOOPGATE_KAFKA_SASL_USERNAME", "required with SASL_SSL"),
        ({"kafka_sasl_password": ""}, "LOOPGATE_KAFKA_SASL_PASSWORD", "required with SASL_SSL"),
        ({"kafka_bootstrap": ""}, "LOOPGATE_KAFKA_BOOTSTRAP", "is empty"),
        ({"kafka_bootstrap": "broker-1"}, "LOOPGATE_KAFKA_BOOTSTRAP", "is not host:port"),
        ({"kafka_bootstrap": "broker-1:9093,broker-2:http"}, "LOOPGATE_KAFKA_BOOTSTRAP", "is not host:port"),
        ({"kafka_bootstrap": "broker-1:70000"}, "LOOPGATE_KAFKA_BOOTSTRAP", "is not host:port"),
        ({"kafka_ssl_cafile": Path("/nonexistent/ca.pem")}, "LOOPGATE_KAFKA_SSL_CAFILE", "does not exist"),
        ({"kafka_ssl_cafile": Path("/")}, "LOOPGATE_KAFKA_SSL_CAFILE", "is not a file"),
        ({"kafka_ssl_certfile": Path("/nonexistent/c.pem")}, "LOOPGATE_KAFKA_SSL_KEYFILE", "needs both"),
        ({"kafka_ssl_key_password": "x"}, "LOOPGATE_KAFKA_SSL_KEY_PASSWORD", "no LOOPGATE_KAFKA_SSL_KEYFILE"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_naming_it(
    pki: Path, overrides: dict[str, Any], setting: str, says: str
) -> None:
    err = refused(sasl_ssl(pki, **overrides))
    assert str(err).startswith(f"{setting}: ") and says in str(err)
    assert err.setting == setting


def test_a_ca_file_that_is_not_a_certificate_is_refused(pki: Path, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    err = refused(sasl_ssl(pki, kafka_ssl_cafile=tmp_path / "ca.pem"))
    assert err.setting == "LOOPGATE_KAFKA_SSL_CAFILE" and "no PEM certificate" in str(err)


def test_a_client_key_that_is_not_the_certificates_is_refused(pki: Path) -> None:
    err = refused(sasl_ssl(pki, kafka_ssl_certfile=pki / "client.pem", kafka_ssl_keyfile=pki / "broker.key"))
    assert err.setting == "LOOPGATE_KAFKA_SSL_KEYFILE"


@pytest.mark.parametrize("name", ["kafka_sasl_username", "kafka_sasl_password"])
def test_a_secret_and_its_file_together_are_refused(pki: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / "secret").write_text("x")
    err = refused(sasl_ssl(pki, **{f"{name}_file": tmp_path / "secret"}))
    assert err.setting == f"LOOPGATE_{name.upper()}" and "not both" in str(err)


@pytest.mark.parametrize(
    ("content", "says"), [(None, "does not exist"), ("", "is empty"), ("\n", "is empty"), (b"\xff\xfe", "UTF-8")]
)
def test_an_unusable_password_file_is_refused(
    pki: Path, tmp_path: Path, content: str | bytes | None, says: str
) -> None:
    path = tmp_path / "password"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    err = refused(sasl_ssl(pki, kafka_sasl_password="", kafka_sasl_password_file=path))
    assert err.setting == "LOOPGATE_KAFKA_SASL_PASSWORD_FILE" and says in str(err)


@pytest.mark.parametrize("name", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_credentials_without_a_sasl_protocol_are_refused_rather_than_silently_unused(name: str) -> None:
    err = refused(Settings(**{name: "PLAIN"}))
    assert err.setting == f"LOOPGATE_{name.upper()}" and "PLAINTEXT, which sends no credentials" in str(err)


def test_tls_files_without_a_tls_protocol_are_refused(pki: Path) -> None:
    err = refused(sasl_ssl(pki, kafka_security_protocol="SASL_PLAINTEXT"))
    assert err.setting == "LOOPGATE_KAFKA_SSL_CAFILE" and "does not use TLS" in str(err)
