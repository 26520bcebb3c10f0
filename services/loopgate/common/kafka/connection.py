"""A Kafka client's connection, the one place it is built: bootstrap, TLS and SASL from the
LOOPGATE_KAFKA_* settings, refusing a setting that cannot work with a `KafkaSettingsError` naming
it; `wait_for_broker` turns a broker that answers but refuses the credentials or the certificate
into a `KafkaStartupError` at once, rather than a retry loop that looks like a hang."""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from loopgate.common.errors import LoopgateError
from loopgate.common.secrets import SecretFileError, read_secret_file
from loopgate.common.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

log = logging.getLogger(__name__)


PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PROBE_TIMEOUT_SECONDS = 10.0
# A broker that accepts TCP connections but closes every one during the first request this many
# times in a row speaks another protocol than ours (TLS vs plaintext).
CLOSED_PROBES_BEFORE_GIVING_UP = 5


class KafkaSettingsError(LoopgateError, ValueError):
    """A LOOPGATE_KAFKA_* setting that cannot work; the message starts with the variable's name."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = f"LOOPGATE_{setting.upper()}"
        super().__init__(f"{self.setting}: {problem}")


class KafkaStartupError(LoopgateError, RuntimeError):
    """The broker answered and refused us (credentials, certificate, protocol): retrying cannot help."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to talk to them; the same for every client of a process."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    connect_timeout_seconds: float = 300.0

    @property
    def servers(self) -> list[tuple[str, int]]:
        return [_host_port(server) for server in self.bootstrap.split(",")]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def faust_broker(self) -> str:
        """faust's broker URL: its hosts are separated by `;`."""
        return "kafka://" + ";".join(f"{host}:{port}" for host, port in self.servers)

    def faust_credentials(self) -> CredentialsT | None:
        """faust's `broker_credentials` for the same connection (None: plaintext)."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.sasl_mechanism is not None:
            # with an ssl_context faust speaks SASL_SSL, without it SASL_PLAINTEXT
            return SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context,
            )
        if self.ssl_context is not None:
            return SSLCredentials(self.ssl_context)
        return None


def _host_port(server: str) -> tuple[str, int]:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise KafkaSettingsError("kafka_bootstrap", f"{server.strip()!r} is not host:port")
    return host.strip("[]"), int(port)


def _read_secret_file(setting: str, path: Path) -> str:
    try:
        return read_secret_file(setting, path)
    except SecretFileError as err:
        raise KafkaSettingsError(err.setting, err.problem) from None


def _secret(settings: Settings, name: str) -> str:
    """A value given directly or through its `_FILE` variant, never both."""
    value: str = getattr(settings, name)
    path: Path | None = getattr(settings, f"{name}_file")
    if path is not None:
        if value:
            raise KafkaSettingsError(
                name, f"set either LOOPGATE_{name.upper()} or LOOPGATE_{name.upper()}_FILE, not both"
            )
        return _read_secret_file(f"{name}_file", path)
    return value


def _existing_file(setting: str, path: Path) -> str:
    if not path.exists():
        raise KafkaSettingsError(setting, f"file {path} does not exist")
    if not path.is_file():
        raise KafkaSettingsError(setting, f"{path} is not a file")
    try:
        path.open("rb").close()
    except PermissionError:
        raise KafkaSettingsError(setting, f"file {path} cannot be read (permission denied)") from None
    return str(path)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if settings.kafka_ssl_cafile is not None:
        cafile = _existing_file("kafka_ssl_cafile", settings.kafka_ssl_cafile)
        try:
            context.load_verify_locations(cafile=cafile)
        except ssl.SSLError as err:
            raise KafkaSettingsError("kafka_ssl_cafile", f"{cafile} holds no PEM certificate ({err.reason})") from None
    certfile, keyfile = settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile
    key_password = _secret(settings, "kafka_ssl_key_password")
    if (certfile is None) != (keyfile is None):
        missing = "kafka_ssl_keyfile" if keyfile is None else "kafka_ssl_certfile"
        raise KafkaSettingsError(missing, "mutual TLS needs both the client certificate and its key")
    if certfile is not None and keyfile is not None:
        cert = _existing_file("kafka_ssl_certfile", certfile)
        key = _existing_file("kafka_ssl_keyfile", keyfile)
        try:
            context.load_cert_chain(cert, key, password=key_password or None)
        except ssl.SSLError as err:
            raise KafkaSettingsError(
                "kafka_ssl_keyfile",
                f"cannot load the client certificate {cert} with key {key} ({err.reason}): is the key the "
                "certificate's, in PEM, and LOOPGATE_KAFKA_SSL_KEY_PASSWORD right?",
            ) from None
    elif key_password:
        raise KafkaSettingsError("kafka_ssl_key_password", "set, but there is no LOOPGATE_KAFKA_SSL_KEYFILE")
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


KafkaTarget = Settings | KafkaConnection | str


def kafka_connection(where: KafkaTarget) -> KafkaConnection:
    """The connection every Kafka client of this process uses, from its settings. A bare
    `host:port[,...]` string is a PLAINTEXT connection (tests and tools on the local broker)."""
    if isinstance(where, KafkaConnection):
        return where
    if isinstance(where, str):
        for server in where.split(","):
            _host_port(server)
        return KafkaConnection(bootstrap=where)
    settings = where
    servers = [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]
    if not servers:
        raise KafkaSettingsError("kafka_bootstrap", "is empty")
    for server in servers:
        _host_port(server)
    protocol = settings.kafka_security_protocol.strip().upper()
    if protocol not in PROTOCOLS:
        raise KafkaSettingsError(
            "kafka_security_protocol", f"{settings.kafka_security_protocol!r} is not one of {', '.join(PROTOCOLS)}"
        )
    mechanism = settings.kafka_sasl_mechanism.strip().upper()
    username = _secret(settings, "kafka_sasl_username")
    password = _secret(settings, "kafka_sasl_password")
    uses_sasl = protocol.startswith("SASL_")
    uses_tls = protocol.endswith("SSL")
    if uses_sasl:
        if not mechanism:
            raise KafkaSettingsError("kafka_sasl_mechanism", f"required with {protocol} ({', '.join(MECHANISMS)})")
        if mechanism not in MECHANISMS:
            raise KafkaSettingsError(
                "kafka_sasl_mechanism", f"{settings.kafka_sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}"
            )
        if not username:
            raise KafkaSettingsError("kafka_sasl_username", f"required with {protocol} ({mechanism})")
        if not password:
            raise KafkaSettingsError("kafka_sasl_password", f"required with {protocol} ({mechanism})")
        if protocol == "SASL_PLAINTEXT" and mechanism == "PLAIN":
            log.warning("LOOPGATE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT with PLAIN sends the password unencrypted")
    else:
        for name, given in (
            ("kafka_sasl_mechanism", mechanism),
            ("kafka_sasl_username", username),
            ("kafka_sasl_password", password),
        ):
            if given:
                raise KafkaSettingsError(
                    name, f"set, but LOOPGATE_KAFKA_SECURITY_PROTOCOL is {protocol}, which sends no credentials"
                )
    if not uses_tls:
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            if getattr(settings, name) is not None:
                raise KafkaSettingsError(
                    name, f"set, but LOOPGATE_KAFKA_SECURITY_PROTOCOL is {protocol}, which does not use TLS"
                )
    return KafkaConnection(
        bootstrap=",".join(servers),
        security_protocol=protocol,
        ssl_context=_ssl_context(settings) if uses_tls else None,
        sasl_mechanism=mechanism if uses_sasl else None,
        sasl_username=username if uses_sasl else None,
        sasl_password=password if uses_sasl else None,
        connect_timeout_seconds=settings.kafka_connect_timeout_seconds,
    )


def _refusal(conn: KafkaConnection, host: str, port: int, err: BaseException) -> str | None:
    """Why a broker that answered refused us, naming the setting to check; None if it may be down."""
    where = f"Kafka at {host}:{port}"
    if isinstance(err, ssl.SSLCertVerificationError):
        if err.verify_code == 62 or "hostname" in str(err).lower():
            return (
                f"{where}: its certificate does not name {host} ({err.verify_message}); check "
                "LOOPGATE_KAFKA_BOOTSTRAP (use a name the certificate lists) or LOOPGATE_KAFKA_SSL_CHECK_HOSTNAME"
            )
        return (
            f"{where}: its TLS certificate is not trusted ({err.verify_message}); check LOOPGATE_KAFKA_SSL_CAFILE "
            "(the CA that signed the brokers' certificates)"
        )
    if isinstance(err, ssl.SSLError):
        return (
            f"{where}: TLS handshake failed ({err.reason or err}); check LOOPGATE_KAFKA_SECURITY_PROTOCOL "
            f"({conn.security_protocol}: is that listener TLS?) and, for mutual TLS, LOOPGATE_KAFKA_SSL_CERTFILE"
        )
    if isinstance(err, SaslAuthenticationFailed | AuthenticationFailedError):
        return (
            f"{where}: authentication failed for user {conn.sasl_username!r} with {conn.sasl_mechanism} ({err}); "
            "check LOOPGATE_KAFKA_SASL_USERNAME, LOOPGATE_KAFKA_SASL_PASSWORD and LOOPGATE_KAFKA_SASL_MECHANISM"
        )
    if isinstance(err, UnsupportedSaslMechanismError):
        return f"{where}: {err}; check LOOPGATE_KAFKA_SASL_MECHANISM"
    if isinstance(err, IllegalSaslStateError):
        return (
            f"{where}: the listener does not speak SASL ({err}); check LOOPGATE_KAFKA_SECURITY_PROTOCOL "
            f"({conn.security_protocol})"
        )
    return None


async def probe_broker(conn: KafkaConnection) -> bool:
    """One connection attempt to each bootstrap server, as every client makes it (TLS, SASL).
    True once one answers; False if none does (down, refused); KafkaStartupError if one refuses us."""
    closed = False
    for host, port in conn.servers:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                probe = await create_conn(
                    host,
                    port,
                    ssl_context=conn.ssl_context,
                    security_protocol=conn.security_protocol,
                    sasl_mechanism=conn.sasl_mechanism,
                    sasl_plain_username=conn.sasl_username,
                    sasl_plain_password=conn.sasl_password,
                    request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000),
                )
        except (OSError, KafkaError, TimeoutError) as err:
            refusal = _refusal(conn, host, port, err)
            if refusal is not None:
                raise KafkaStartupError(refusal) from err
            refused = isinstance(err, ConnectionRefusedError) or getattr(err, "errno", None) == errno.ECONNREFUSED
            closed = closed or isinstance(err, KafkaConnectionError | ConnectionResetError | TimeoutError)
            log.debug("Kafka at %s:%s: %r (refused=%s)", host, port, err, refused)
            continue
        probe.close()
        return True
    if closed:
        raise _ClosedDuringHandshake()
    return False


class _ClosedDuringHandshake(Exception):
    pass


async def wait_for_broker(where: KafkaTarget, *, give_up_after: float | None = None) -> None:
    """Return once a broker answers and accepts us; a service started while Kafka restarts waits
    rather than exits. A refusal (credentials, certificate, protocol) raises KafkaStartupError at once."""
    conn = kafka_connection(where)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (conn.connect_timeout_seconds if give_up_after is None else give_up_after)
    delay = 0.5
    closed_in_a_row = 0
    while True:
        try:
            if await probe_broker(conn):
                return
            closed_in_a_row = 0
        except _ClosedDuringHandshake:
            closed_in_a_row += 1
            if closed_in_a_row >= CLOSED_PROBES_BEFORE_GIVING_UP:
                raise KafkaStartupError(
                    f"Kafka at {conn.bootstrap} accepts connections but closes them during the first request "
                    f"({closed_in_a_row} times): check LOOPGATE_KAFKA_SECURITY_PROTOCOL ({conn.security_protocol}) "
                    "against the listener's (TLS or not, SASL or not)"
                ) from None
        if loop.time() + delay > deadline:
            raise KafkaConnectionError(
                f"Kafka at {conn.bootstrap} did not answer within {deadline - loop.time() + delay:.0f} s; "
                "check LOOPGATE_KAFKA_BOOTSTRAP"
            )
        log.warning("Kafka at %s does not answer yet; retrying in %.1f s", conn.bootstrap, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
