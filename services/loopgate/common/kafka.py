"""Kafka helpers used by several services: the one place a Kafka client's connection is built
(bootstrap, TLS, SASL, from the LOOPGATE_KAFKA_* settings), topic creation and checks, producer
defaults.

Every client (faust's, the dispatcher's and the outbox relay's aiokafka clients, the CLI, the
tools) takes its connection from `kafka_connection(settings)`, which refuses a setting that cannot
work with a `KafkaSettingsError` naming it; `wait_for_broker` turns a broker that answers but
refuses the credentials or the certificate into a `KafkaStartupError` at once, rather than a retry
loop that looks like a hang.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)

from loopgate.common import metrics
from loopgate.common.errors import LoopgateError
from loopgate.common.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

log = logging.getLogger(__name__)


COMPACTED = {"cleanup.policy": "compact"}
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KafkaSettingsError(setting, f"file {path} does not exist") from None
    except IsADirectoryError:
        raise KafkaSettingsError(setting, f"{path} is a directory, not a file") from None
    except PermissionError:
        raise KafkaSettingsError(setting, f"file {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise KafkaSettingsError(setting, f"file {path} is not UTF-8 text") from None
    # a mounted secret often ends with one newline, which is not part of the secret
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise KafkaSettingsError(setting, f"file {path} is empty")
    return text


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


def admin_client(where: KafkaTarget) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka_connection(where).client_kwargs())


def consumer(where: KafkaTarget, *topics_: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics_, **kafka_connection(where).client_kwargs(), **options)


def producer(where: KafkaTarget, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka_connection(where).client_kwargs(), **options)


def replication_configs(settings: Settings) -> dict[str, str]:
    """The durability every topic Loopgate creates gets: with producers at acks=all, a write is
    acknowledged once `min.insync.replicas` replicas hold it."""
    if settings.min_insync_replicas > settings.replication_factor:
        raise KafkaSettingsError(
            "min_insync_replicas",
            f"{settings.min_insync_replicas} is more than LOOPGATE_REPLICATION_FACTOR ({settings.replication_factor}): "
            "no write could ever be acknowledged",
        )
    return {"min.insync.replicas": str(settings.min_insync_replicas)}


async def ensure_topics(
    settings: Settings, wanted: dict[str, int] | None = None, *, configs: dict[str, str] | None = None
) -> dict[str, int]:
    """Create the topics that do not exist yet, with explicit partition counts, the replication
    factor and min.insync.replicas of the settings (every Loopgate topic, upstream ones included,
    unless `wanted` is given), and wait until each partition has a leader."""
    wanted = settings.topic_partitions() if wanted is None else wanted
    topic_configs = {**replication_configs(settings), **(configs or {})}
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, settings.replication_factor, topic_configs=topic_configs)
            for name, n in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                response = await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            else:
                topic_errors: list[Any] = getattr(response, "topic_errors", [])
                refused = [(t[0], t[1], t[2] if len(t) > 2 else "") for t in topic_errors if t[1] not in (0, 36)]
                if refused:
                    raise KafkaStartupError(
                        "; ".join(
                            f"cannot create topic {name}: error {code} {message}" for name, code, message in refused
                        )
                        + f" (LOOPGATE_REPLICATION_FACTOR is {settings.replication_factor}: no more than the brokers)"
                    )
            log.info("created topics %s", [t.name for t in missing])
        for _ in range(100):  # fresh partitions get their leader shortly after creation
            described = await admin.describe_topics(list(wanted))
            if all(
                not d.get("error_code") and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                for d in described
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return wanted


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    configs: dict[str, str]


async def describe_topics(where: KafkaTarget, names: list[str]) -> dict[str, TopicState]:
    """Partitions, replication factor and configuration of each named topic that exists."""
    admin = admin_client(where)
    await admin.start()
    try:
        described = [d for d in await admin.describe_topics(names) if not d.get("error_code")]
        if not described:
            return {}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, d["topic"]) for d in described]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        resources: list[Any] = getattr(response, "resources", [])
        for resource in resources:
            configs[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return {
        d["topic"]: TopicState(
            partitions=len(d["partitions"]),
            replication_factor=min((len(p["replicas"]) for p in d["partitions"]), default=0),
            configs=configs.get(d["topic"], {}),
        )
        for d in described
    }


async def check_topics(settings: Settings, changelogs: dict[str, int] | None = None) -> list[str]:
    """What in the existing topics does not fit what Loopgate needs, one line each naming the topic
    and the setting: an empty list when everything fits.

    Upstream topics must have LOOPGATE_UPSTREAM_PARTITIONS partitions, as the detector's baseline
    tables are co-partitioned with them (so must its changelogs); the topics Loopgate writes must
    be replicated as the settings say, and their min.insync.replicas at least the setting."""
    own = settings.own_topic_partitions()
    changelogs = changelogs or {}
    upstream = settings.upstream_topics()
    state = await describe_topics(settings, [*upstream, *own, *changelogs])
    problems: list[str] = []
    for name in upstream:
        topic = state.get(name)
        if topic is None:
            problems.append(
                f"{name}: does not exist; its upstream team creates it (or `loopgate topics create --with-upstream`)"
            )
        elif topic.partitions != settings.upstream_partitions:
            problems.append(
                f"{name}: {topic.partitions} partitions, but LOOPGATE_UPSTREAM_PARTITIONS is "
                f"{settings.upstream_partitions}; the detector's baseline tables are co-partitioned with it: set "
                f"LOOPGATE_UPSTREAM_PARTITIONS={topic.partitions} (every upstream topic must have the same count)"
            )
    for name, partitions in changelogs.items():
        topic = state.get(name)
        if topic is not None and topic.partitions != partitions:
            problems.append(
                f"{name}: {topic.partitions} partitions, but the detector's table needs {partitions} "
                "(LOOPGATE_UPSTREAM_PARTITIONS): faust refuses it; recreate the changelog (the baselines rebuild)"
            )
    for name in [*own, *changelogs]:
        topic = state.get(name)
        if topic is None:
            continue
        if topic.replication_factor < settings.replication_factor:
            problems.append(
                f"{name}: replication factor {topic.replication_factor}, below LOOPGATE_REPLICATION_FACTOR "
                f"({settings.replication_factor}); add replicas with kafka-reassign-partitions"
            )
        min_isr = int(topic.configs.get("min.insync.replicas", "1") or 1)
        if min_isr < settings.min_insync_replicas:
            problems.append(
                f"{name}: min.insync.replicas {min_isr}, below LOOPGATE_MIN_INSYNC_REPLICAS "
                f"({settings.min_insync_replicas}); kafka-configs --alter --add-config "
                f"min.insync.replicas={settings.min_insync_replicas}"
            )
    return problems


async def delete_topics_with_prefix(where: KafkaTarget, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (tests clean up what they made)."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = admin_client(where)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def reliable_producer(where: KafkaTarget, **overrides: object) -> AIOKafkaProducer:
    """A producer for records that must not be lost or doubled: idempotent, acks=all."""
    options: dict[str, object] = {
        **kafka_connection(where).client_kwargs(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 30000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def topic_partitions(where: KafkaTarget, names: list[str]) -> list[TopicPartition]:
    """Every partition of the named topics that exist (missing topics have none)."""
    admin = admin_client(where)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if not d.get("error_code")
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


async def read_topic(where: KafkaTarget, topic: str, *, poll_ms: int = 1000) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in `topic`, from the beginning (no consumer group, no commits)."""
    tps = await topic_partitions(where, [topic])
    if not tps:
        return []
    reader = consumer(where, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        end = await reader.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in tps if await reader.position(tp) < end[tp]]:
            batch = await reader.getmany(timeout_ms=poll_ms)
            for tp, msgs in batch.items():
                records.extend(m for m in msgs if m.offset < end[tp])
        return records
    finally:
        await reader.stop()


async def consumer_group_lag(where: KafkaTarget, group: str, topics_: list[str]) -> int:
    """Messages in `topics_` not yet committed by consumer group `group` (all partitions)."""
    return sum((await partition_lags(where, group, topics_)).values())


async def partition_lags(where: KafkaTarget, group: str, topics_: list[str]) -> dict[TopicPartition, int]:
    """Per partition of `topics_`: messages not yet committed by consumer group `group`."""
    tps = await topic_partitions(where, topics_)
    admin = admin_client(where)
    reader = consumer(where, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        end = await reader.end_offsets(tps)
        lags = {}
        for tp in tps:
            meta = committed.get(tp)
            lags[tp] = end[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lags
    finally:
        await reader.stop()
        await admin.close()


class ConsumerLag:
    """A worker's lag on what it consumes, from its own consumer's data (no extra broker request):
    per partition, the high watermark its latest fetch returned minus the offset after the last
    record it read; the gauge `loopgate_consumer_lag_messages{consumer, topic}` is the sum over the
    partitions it owns, so summing over workers gives the group's lag."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self._lags: dict[tuple[str, int], int] = {}

    def observe(self, topic: str, partition: int, last_offset: int, highwater: int | None) -> None:
        if highwater is None:  # not known before the partition's first fetch
            return
        self._lags[(topic, partition)] = max(0, highwater - last_offset - 1)
        self._publish({topic})

    def retain(self, owned: set[tuple[str, int]]) -> None:
        """Forget partitions this worker no longer owns: their lag is their new owner's to report."""
        gone = {key for key in self._lags if key not in owned}
        for key in gone:
            del self._lags[key]
        self._publish({topic for topic, _ in gone})

    def _publish(self, topics_: set[str]) -> None:
        for topic in topics_:
            lag = sum(value for (name, _), value in self._lags.items() if name == topic)
            metrics.CONSUMER_LAG.labels(self.consumer, topic).set(lag)
