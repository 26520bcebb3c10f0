"""Benchmark of the resolution API and the dispatcher (issue 6), measured from outside real processes.

`loopgate api serve` (one uvicorn worker) runs on a SQLite file and on a throwaway PostgreSQL
cluster; a load generator in this process (aiohttp, a bounded number of requests in flight) measures
creates per second and their latency, resolves per second, and list latency with a large table
bulk-loaded directly into the database (realistic distributions of status, severity, source, rule,
client, assignee and times). Then `loopgate dispatcher` drains records pre-published to a fresh
exceptions topic into the SQLite API; deliveries per second is the drain rate of its consumer lag.

Targets (issue 6): at least 1,500 creates per second with p99 at most 50 ms, list p99 at most
50 ms with 1,000,000 exceptions stored, one uvicorn worker on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
import sqlalchemy as sa

from loopgate.common.kafka import consumer_group_lag, delete_topics_with_prefix, ensure_topics, reliable_producer
from loopgate.common.settings import DEFAULT_SLAS, Settings
from loopgate.detector.config import load_detection_config
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.exceptions import store
from loopgate_schemas.exceptions import ExceptionRecord, Kind, Severity
from loopgate_tools.postgres import PostgresCluster, PostgresServer
from loopgate_tools.processes import SERVICE_COMMANDS, ServiceProcess, free_port, run_cli, settings_env, wait_until
from loopgate_tools.progress import Reporter, Stage
from loopgate_tools.simulator.generator import EVENT_TOPIC, RULE_EVENT_TYPE

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 32  # requests in flight, like the dispatcher's default LOOPGATE_DISPATCH_CONCURRENCY
LIST_PAGES = 5  # pages followed through next_cursor per pagination walk
TARGET_CREATES_PER_SECOND = ">= 1500"
TARGET_LATENCY_MS = "<= 50"
# PostgreSQL as one would run it: durable (fsync, full-page writes), commits acknowledged before the
# WAL reaches the disk, like SQLite's WAL with synchronous=NORMAL that the API uses.
POSTGRES_BENCH_SETTINGS = {"synchronous_commit": "off", "shared_buffers": "256MB"}


@dataclass(frozen=True, slots=True)
class Sizes:
    creates: int
    resolves: int
    stored: int  # exceptions bulk-loaded into the database before anything is measured
    list_requests: int
    storm: int  # records through the dispatcher into the API, end to end
    bulk: int  # exceptions the storm opens (bid_over_cap, grouped), then resolved in one call


QUICK = Sizes(creates=2_000, resolves=500, stored=50_000, list_requests=240, storm=20_000, bulk=10_000)
FULL = Sizes(creates=20_000, resolves=5_000, stored=1_000_000, list_requests=240, storm=100_000, bulk=10_000)
TARGET_STORM = {"api-sqlite": ">= 5000", "api-postgres": ">= 3000"}
TARGET_STORM_LIST_MS = "<= 100"
TARGET_BULK_RESOLVE_MS = "<= 5000"


Measured = Callable[[dict[str, Any]], None]


def run_api_benchmarks(
    workdir: Path,
    *,
    quick: bool,
    sizes: Sizes | None = None,
    progress: Reporter | None = None,
    measured: Measured | None = None,
) -> list[dict[str, Any]]:
    """Every API and dispatcher figure, one dict per figure (group, name, value, unit, target, met),
    in the table's order; each is handed to `measured` as soon as it is known.
    `sizes` overrides the quick or full sizes (the smoke test runs a tiny benchmark)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(
        _run(workdir, sizes or (QUICK if quick else FULL), progress or Reporter.silent(), measured or (lambda _: None))
    )


async def _run(workdir: Path, sizes: Sizes, progress: Reporter, measured: Measured) -> list[dict[str, Any]]:
    base = Settings().model_copy(  # the broker address and the like come from LOOPGATE_ variables
        update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-", "sweep_interval_seconds": 5.0}
    )
    await ensure_topics(base, _api_topics(base))
    results: list[dict[str, Any]] = []
    try:
        sqlite_url = f"sqlite+aiosqlite:///{workdir / 'bench-api.db'}"
        (workdir / "bench-api.db").unlink(missing_ok=True)
        sqlite = base.model_copy(update={"database_url": sqlite_url})
        async with _api_under_test(sqlite, workdir / "sqlite", sizes, progress) as api:
            results += await _api_figures("api-sqlite", api, sizes, progress, measured)
            results += await _storm_figures("api-sqlite", api, workdir / "sqlite", sizes, progress, measured)
        cluster = PostgresCluster(settings=dict(POSTGRES_BENCH_SETTINGS))
        server = cluster.start()
        try:
            name = await server.create_database("loopgate_bench")
            postgres = base.model_copy(update={"database_url": server.url(name)})
            async with _api_under_test(postgres, workdir / "postgres", sizes, progress, server=server) as api:
                results += await _api_figures("api-postgres", api, sizes, progress, measured)
                results += await _storm_figures("api-postgres", api, workdir / "postgres", sizes, progress, measured)
        finally:
            cluster.stop()
    finally:
        await delete_topics_with_prefix(base, base.topic_prefix)
    return results


def _api_topics(settings: Settings) -> dict[str, int]:
    partitions = settings.topic_partitions()
    names = (settings.exceptions_topic, settings.exceptions_dlq_topic, settings.outcomes_topic)
    return {name: partitions[name] for name in names}


def result(group: str, name: str, value: float, unit: str, target: str = "") -> dict[str, Any]:
    met = None
    if target:
        op, bound = target.split()
        met = value >= float(bound) if op == ">=" else value <= float(bound)
    return {"group": group, "name": name, "value": round(value, 2), "unit": unit, "target": target, "met": met}


# --- realistic data --------------------------------------------------------------------------

CLIENTS = [
    "northwind",
    "contoso",
    "fabrikam",
    "tailspin",
    "wingtip",
    "adventureworks",
    "litware",
    "proseware",
    "woodgrove",
    "lucerne",
    "alpine",
    "coho",
    "fourthcoffee",
    "margie",
    "relecloud",
    "trey",
    *(f"client-{n:02d}" for n in range(24)),
]
OPERATORS = [f"operator-{n:02d}" for n in range(25)]
# How often each rule fires, relative to the others (audit samples and bad messages included).
RULE_WEIGHTS = {
    "bid_over_cap": 14,
    "bid_jump": 10,
    "bid_anomaly": 6,
    "overspend": 3,
    "pacing_off": 9,
    "constraint": 4,
    "bad_flight": 3,
    "click_url": 4,
    "domain_not_allowed": 2,
    "size_mismatch": 5,
    "delivery_stalled": 3,
    "delivery_anomaly": 5,
    "caption_too_long": 6,
    "brand_safety": 2,
    "brand_voice": 6,
    "claim_verification": 3,
    "schema_violation": 2,
    "audit_sample": 13,
}
SUBJECT_PREFIX = {"bid-management.events": "li", "trafficking.events": "pl", "content-pipeline.events": "post"}
DECISIONS = ["confirmed"] * 6 + ["false_positive"] * 3 + ["dismissed"]


@dataclass(frozen=True, slots=True)
class _Rule:
    rule_id: str
    kind: str
    severity: str
    source: str
    event_type: str | None


def _rules() -> list[_Rule]:
    config = load_detection_config()
    rules = []
    for rule_id in RULE_WEIGHTS:
        event_type = RULE_EVENT_TYPE.get(rule_id)
        source = EVENT_TOPIC[event_type] if event_type else "bid-management.events"
        kind = (
            Kind.ANOMALY
            if rule_id.endswith("_anomaly")
            else Kind.AUDIT_SAMPLE
            if rule_id == "audit_sample"
            else Kind.DATA_QUALITY
            if rule_id == "schema_violation"
            else Kind.THRESHOLD_BREACH
        )
        rules.append(_Rule(rule_id, kind.value, config.severity_of(rule_id).value, source, event_type))
    return rules


class _Catalog:
    """Draws realistic exceptions: skewed rules, clients and operators; unique subjects."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rules = _rules()
        self.rule_weights = list(itertools.accumulate(RULE_WEIGHTS[r.rule_id] for r in self.rules))
        self.client_weights = list(itertools.accumulate(1 / (n + 1) for n in range(len(CLIENTS))))
        self.operator_weights = list(itertools.accumulate(1 / math.sqrt(n + 1) for n in range(len(OPERATORS))))

    def rule(self) -> _Rule:
        return self.rng.choices(self.rules, cum_weights=self.rule_weights)[0]

    def client(self) -> str:
        return self.rng.choices(CLIENTS, cum_weights=self.client_weights)[0]

    def operator(self) -> str:
        return self.rng.choices(OPERATORS, cum_weights=self.operator_weights)[0]

    def record(self, unique: str, detected_at: dt.datetime) -> dict[str, Any]:
        """One exception record (contract) whose fingerprint no other record shares."""
        rule, client, rng = self.rule(), self.client(), self.rng
        subject = f"{SUBJECT_PREFIX[rule.source]}-{unique}"
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        observed = round(rng.uniform(1, 20), 2)
        return {
            "exception_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{rule.rule_id}/{event_id}")),
            "fingerprint": f"{rule.rule_id}:{subject}",
            "kind": rule.kind,
            "rule_id": rule.rule_id,
            "severity": rule.severity,
            "source": rule.source,
            "event_type": rule.event_type,
            "subject": subject,
            "client_id": client,
            "summary": f"{rule.rule_id.replace('_', ' ')} on {subject} ({client}): observed {observed}",
            "observed": {"value": observed},
            "threshold": {"max": round(observed / rng.uniform(1.1, 2.5), 2)},
            "expected": None,
            "score": round(rng.uniform(0.5, 9.0), 3),
            "event": {
                "specversion": "1.0",
                "id": event_id,
                "source": f"/{rule.source}",
                "type": rule.event_type,
                "time": detected_at.isoformat(),
                "subject": subject,
                "data": {
                    "client_id": client,
                    "campaign_id": f"cmp-{rng.randrange(5000)}",
                    "platform": rng.choice(["google_ads", "dv360", "meta", "ttd", "amazon_dsp"]),
                    "value": observed,
                },
            },
            "event_ref": {"topic": rule.source, "partition": rng.randrange(6), "offset": rng.randrange(10**7)},
            "occurrences": 1,
            "detected_at": detected_at.isoformat(),
        }

    def stored_rows(self, count: int, now: dt.datetime, batch: int) -> Iterator[list[dict[str, Any]]]:
        """`count` exceptions as table rows, first seen over the last 90 days (oldest first), in
        batches: old ones mostly resolved, recent ones mostly still being worked."""
        rng, span = self.rng, dt.timedelta(days=90)
        rows: list[dict[str, Any]] = []
        for i in range(count):
            first_seen = now - span + span * (i + rng.random()) / count
            record = self.record(f"stored-{i}", first_seen)
            age = now - first_seen
            created_at = first_seen + dt.timedelta(seconds=rng.uniform(0.05, 3))
            row = _stored_row(record, first_seen, created_at)
            sla = DEFAULT_SLAS[Severity(record["severity"])]
            resolved_share = 0.97 if age > dt.timedelta(days=7) else 0.5 * min(1.0, age / dt.timedelta(days=7))
            if rng.random() < resolved_share:
                resolved_at = first_seen + min(age, dt.timedelta(seconds=rng.expovariate(1 / sla.ack_seconds)))
                operator = self.operator()
                row.update(
                    status="resolved",
                    assignee=operator,
                    resolver=operator,
                    resolved_at=resolved_at,
                    decision=rng.choice(DECISIONS),
                    reason="checked with the trafficker",
                    correction={},
                    resolution_count=1,
                    version=3,
                    updated_at=resolved_at,
                    time_to_resolve_seconds=(resolved_at - first_seen).total_seconds(),
                )
            else:
                status = rng.choices(["open", "claimed", "escalated", "snoozed"], [60, 25, 10, 5])[0]
                row.update(status=status, version=2 if status != "open" else 1)
                if status in ("claimed", "escalated"):
                    row["assignee"] = self.operator()
                if status == "snoozed":
                    row["snoozed_until"] = now + dt.timedelta(hours=rng.uniform(1, 48))
                elif age.total_seconds() > sla.resolve_seconds:
                    row["sla_breach"] = "resolve"  # the sweeper escalated it when it aged past its SLA
                elif age.total_seconds() > sla.ack_seconds and status == "open":
                    row["sla_breach"] = "ack"
            rows.append(row)
            if len(rows) == batch:
                yield rows
                rows = []
        if rows:
            yield rows


def _stored_row(record: dict[str, Any], first_seen: dt.datetime, created_at: dt.datetime) -> dict[str, Any]:
    """The row the API would have stored for `record` (store.new_exception_values: one row shape),
    first seen at `first_seen`; every other column at its default."""
    values = store.new_exception_values(ExceptionRecord.model_validate(record), now=created_at)
    values.update(first_seen=first_seen, last_seen=first_seen)
    return {column.name: values.get(column.name) for column in ExceptionRow.__table__.columns}


# --- bulk load -------------------------------------------------------------------------------

LOAD_BATCH = 20_000


async def _bulk_load(settings: Settings, server: PostgresServer | None, count: int, seed: int, stage: Stage) -> float:
    """Load `count` exceptions straight into the (migrated) database; returns the seconds it took."""
    started = time.perf_counter()
    batches = _counted(_Catalog(seed).stored_rows(count, dt.datetime.now(dt.UTC), LOAD_BATCH), stage)
    if server is None:
        await asyncio.to_thread(_load_sqlite, settings.database_url, batches)
    else:
        await _load_postgres(settings.database_url, batches)
    return time.perf_counter() - started


def _counted(batches: Iterator[list[dict[str, Any]]], stage: Stage) -> Iterator[list[dict[str, Any]]]:
    """The batches, the stage advanced by each one once it is stored (when the next is asked for)."""
    for batch in batches:
        yield batch
        stage.advance(len(batch))


def _load_sqlite(url: str, batches: Iterator[list[dict[str, Any]]]) -> None:
    engine = sa.create_engine(url.replace("+aiosqlite", ""), json_serializer=lambda v: orjson.dumps(v).decode())
    try:
        with engine.begin() as conn:
            for batch in batches:
                conn.execute(sa.insert(ExceptionRow), batch)
    finally:
        engine.dispose()


async def _load_postgres(url: str, batches: Iterator[list[dict[str, Any]]]) -> None:
    parsed = sa.make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database)
    json_columns = {c.name for c in ExceptionRow.__table__.columns if isinstance(c.type, sa.JSON)}
    columns = [c.name for c in ExceptionRow.__table__.columns]
    try:
        for batch in batches:
            records = [
                tuple(orjson.dumps(r[c]).decode() if c in json_columns and r[c] is not None else r[c] for c in columns)
                for r in batch
            ]
            await conn.copy_records_to_table("exceptions", records=records, columns=columns)
        await conn.execute("VACUUM ANALYZE exceptions")  # what autovacuum does soon after a big load
    finally:
        await conn.close()


# --- the API under test ----------------------------------------------------------------------


@dataclass
class _Api:
    settings: Settings
    process: ServiceProcess
    service_token: str
    operator_token: str
    stored: int

    @property
    def url(self) -> str:
        return self.settings.api_url


class _api_under_test:
    """Migrate, create tokens, bulk-load, then `loopgate api serve` (one worker) until exit."""

    def __init__(
        self, settings: Settings, logdir: Path, sizes: Sizes, progress: Reporter, server: PostgresServer | None = None
    ):
        port = free_port()
        self.settings = settings.model_copy(update={"api_port": port, "api_url": f"http://127.0.0.1:{port}"})
        self.logdir, self.sizes, self.server, self.progress = logdir, sizes, server, progress
        self.process: ServiceProcess | None = None

    async def __aenter__(self) -> _Api:
        settings = self.settings
        run_cli(settings, "api", "migrate")
        service = run_cli(settings, "api", "tokens", "create", "--role", "service", "--name", "bench-dispatcher")
        operator = run_cli(settings, "api", "tokens", "create", "--role", "operator", "--name", "bench-operator")
        database = "PostgreSQL" if self.server is not None else "SQLite"
        with self.progress.stage(f"api: loading {database}", total=self.sizes.stored, unit="exceptions") as stage:
            seconds = await _bulk_load(settings, self.server, self.sizes.stored, seed=6, stage=stage)
        log.info("loaded %d exceptions in %.1f s", self.sizes.stored, seconds)
        # --log-level warning: no access log line per request (the API's own logging stays on).
        self.process = ServiceProcess(
            "api",
            [*SERVICE_COMMANDS["api"], "--log-level", "warning"],
            settings_env(settings),
            self.logdir / "api.log",
        ).start()
        wait_until(self._ready, timeout=120, what=f"the API ({self.logdir / 'api.log'})")
        return _Api(
            settings,
            self.process,
            service.strip().splitlines()[-1],
            operator.strip().splitlines()[-1],
            self.sizes.stored,
        )

    def _ready(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"the API exited:\n{self.process.log()[-3000:]}")
        try:
            return httpx.get(f"{self.settings.api_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    async def __aexit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.stop()


# --- load generation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Load:
    seconds: float
    latencies: list[float]  # seconds, one per request
    bodies: list[Any]

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def _drive(
    count: int,
    concurrency: int,
    send: Callable[[int], Awaitable[_Answer]],
    expect: set[int],
    stage: Stage | None = None,
) -> _Load:
    """Send requests 0..count-1 with `concurrency` in flight; every answer must be in `expect`.
    `stage` counts the answers."""
    latencies: list[float] = []
    bodies: list[Any] = [None] * count
    failures: Counter[int] = Counter()
    first_failure: list[str] = []
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            sent = time.perf_counter()
            response = await send(i)
            latencies.append(time.perf_counter() - sent)
            if stage is not None:
                stage.advance()
            if response.status_code in expect:
                bodies[i] = response.json()
            else:
                failures[response.status_code] += 1
                first_failure.append(response.text[:500])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{sum(failures.values())} of {count} requests failed {dict(failures)}: {first_failure[0]}")
    return _Load(seconds, latencies, bodies)


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class _LoadClient:
    """The load generator's HTTP client, on aiohttp: a request costs it a fraction of what it costs
    httpx, whose client topped out near 190 requests a second on this 2-core machine (measured on
    /healthz), below what the API serves. The generator shares the machine with the API."""

    def __init__(self, api: _Api, token: str, concurrency: int) -> None:
        self._args = (api.url, {"authorization": f"Bearer {token}", "content-type": "application/json"}, concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _LoadClient:
        url, headers, concurrency = self._args
        self._session = aiohttp.ClientSession(
            base_url=url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=concurrency),
            skip_auto_headers=["User-Agent"],
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def post(self, path: str, content: bytes) -> _Answer:
        assert self._session is not None
        async with self._session.post(path, data=content) as response:
            return _Answer(response.status, await response.read())

    async def get(self, path: str, params: dict[str, Any] | None = None) -> _Answer:
        assert self._session is not None
        query = [(k, v) for k, vs in (params or {}).items() for v in (vs if isinstance(vs, list) else [vs])]
        async with self._session.get(path, params=query) as response:
            return _Answer(response.status, await response.read())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _api_figures(
    group: str, api: _Api, sizes: Sizes, progress: Reporter, measured: Measured
) -> list[dict[str, Any]]:
    catalog = _Catalog(seed=hash(group) & 0xFFFF)
    run = uuid.uuid4().hex[:6]
    bodies = [
        orjson.dumps(catalog.record(f"{run}-{i}", dt.datetime.now(dt.UTC)))
        for i in range(sizes.creates + CREATE_CONCURRENCY)
    ]
    warmup, timed = bodies[:CREATE_CONCURRENCY], bodies[CREATE_CONCURRENCY:]
    async with _LoadClient(api, api.service_token, CREATE_CONCURRENCY) as http:
        await _drive(len(warmup), CREATE_CONCURRENCY, lambda i: http.post("/v1/exceptions", content=warmup[i]), {201})
        assert api.process.proc is not None
        cpu_before = _cpu_seconds(api.process.proc.pid)
        with progress.stage(f"{group}: creates", total=len(timed), unit="requests") as stage:
            creates = await _drive(
                len(timed), CREATE_CONCURRENCY, lambda i: http.post("/v1/exceptions", content=timed[i]), {201}, stage
            )
        cpu = (_cpu_seconds(api.process.proc.pid) - cpu_before) / creates.seconds
    log.info("%s: %.0f creates/s, API process at %.0f%% of one core", group, creates.per_second, 100 * cpu)
    figures = [
        result(group, "creates per second", creates.per_second, "/s", TARGET_CREATES_PER_SECOND),
        result(group, "create p50 latency", creates.percentile_ms(50), "ms"),
        result(group, "create p99 latency", creates.percentile_ms(99), "ms", TARGET_LATENCY_MS),
    ]
    for figure in figures:
        measured(figure)

    created_ids = [b["id"] for b in creates.bodies]
    resolve_body = orjson.dumps({"decision": "confirmed", "reason": "checked with the trafficker"})
    resolve_count = min(sizes.resolves, len(created_ids))
    async with _LoadClient(api, api.operator_token, CREATE_CONCURRENCY) as http:
        with progress.stage(f"{group}: resolves", total=resolve_count, unit="requests") as stage:
            resolves = await _drive(
                resolve_count,
                CREATE_CONCURRENCY,
                lambda i: http.post(f"/v1/exceptions/{created_ids[i]}/resolve", content=resolve_body),
                {200},
                stage,
            )
    figures.append(result(group, "resolves per second", resolves.per_second, "/s"))
    measured(figures[-1])
    with progress.stage(f"{group}: lists", total=sizes.list_requests, unit="requests") as stage:
        lists = await _list_latencies(api, sizes.list_requests, catalog, stage)
    stored = f"{api.stored + len(bodies):,} stored"  # loaded, plus every create (warm-up included)
    for figure in (
        result(group, f"list p50 latency ({stored})", lists.percentile_ms(50), "ms"),
        result(group, f"list p99 latency ({stored})", lists.percentile_ms(99), "ms", TARGET_LATENCY_MS),
    ):
        figures.append(figure)
        measured(figure)
    return figures


def _list_queries(catalog: _Catalog, now: dt.datetime) -> list[dict[str, Any]]:
    """What operators ask for: the queue, their own work, one rule, one client, a time window."""
    day = dt.timedelta(days=1)

    def iso(t: dt.datetime) -> str:
        return t.isoformat().replace("+00:00", "Z")

    return [
        {},
        {"status": "open"},
        {"status": ["open", "claimed", "escalated"]},
        {"severity": "critical"},
        {"severity": "critical", "status": "open"},
        {"rule_id": "click_url"},
        {"rule_id": "bid_over_cap", "status": "open"},
        {"client_id": "proseware"},
        {"client_id": "northwind", "severity": "high"},
        {"source": "content-pipeline.events"},
        {"assignee": "operator-07"},
        {"assignee": "operator-03", "status": "claimed"},
        {"detected_after": iso(now - day)},
        {"detected_after": iso(now - 30 * day), "detected_before": iso(now - 29 * day)},
    ]


async def _list_latencies(api: _Api, count: int, catalog: _Catalog, stage: Stage) -> _Load:
    """`count` list requests one at a time: the query mix, each fifth a walk of LIST_PAGES pages."""
    queries = _list_queries(catalog, dt.datetime.now(dt.UTC))
    latencies: list[float] = []
    async with _LoadClient(api, api.operator_token, 1) as http:
        await http.get("/v1/exceptions")  # warm-up: connection, statement caches
        started = time.perf_counter()
        for n in itertools.count():
            params = queries[n % len(queries)]
            cursor = None
            for _ in range(LIST_PAGES if n % 5 == 0 else 1):
                sent = time.perf_counter()
                response = await http.get("/v1/exceptions", params={**params, **({"cursor": cursor} if cursor else {})})
                latencies.append(time.perf_counter() - sent)
                stage.update(len(latencies))
                if response.status_code != 200:
                    raise RuntimeError(
                        f"GET /v1/exceptions {params} answered {response.status_code}: {response.text[:500]}"
                    )
                cursor = response.json()["next_cursor"]
                if cursor is None:
                    break
            if len(latencies) >= count:
                break
    return _Load(time.perf_counter() - started, latencies, [])


# --- dispatcher ------------------------------------------------------------------------------


async def _storm_figures(
    group: str, api: _Api, logdir: Path, sizes: Sizes, progress: Reporter, measured: Measured
) -> list[dict[str, Any]]:
    """An alert storm: `sizes.storm` bid_over_cap records of one client over `sizes.bulk`
    fingerprints (a misbehaving bidder), pre-published to the exceptions topic; `loopgate
    dispatcher` drains them into the API (batched creates), timed from its first commit to the last,
    while an operator lists the queue one request after the other; then the storm is resolved as a
    false positive in one bulk call."""
    settings = api.settings.model_copy(update={"api_token": api.service_token, "dispatcher_metrics_port": free_port()})
    run = uuid.uuid4().hex[:6]
    client = f"storm-{run}"
    base = _Catalog(seed=7).record(f"storm-{run}", dt.datetime.now(dt.UTC))
    producer = reliable_producer(settings, linger_ms=20)
    await producer.start()
    try:
        sent = []
        with progress.stage(f"{group}: publishing the storm", total=sizes.storm, unit="records") as stage:
            for i in range(sizes.storm):
                subject = f"li-{run}-{i % sizes.bulk}"
                record = {
                    **base,
                    "exception_id": f"storm-{run}-{i}",
                    "fingerprint": f"bid_over_cap:{subject}",
                    "rule_id": "bid_over_cap",
                    "kind": "threshold_breach",
                    "severity": "high",
                    "subject": subject,
                    "client_id": client,
                    "detected_at": dt.datetime.now(dt.UTC).isoformat(),
                }
                sent.append(
                    await producer.send(
                        settings.exceptions_topic, orjson.dumps(record), key=record["exception_id"].encode()
                    )
                )
                stage.advance()
            await asyncio.gather(*sent)
    finally:
        await producer.stop()

    group_id, topic = settings.group(settings.dispatcher_group), [settings.exceptions_topic]
    dispatcher = ServiceProcess.for_service("dispatcher", settings, logdir).start()
    first: tuple[float, int] = (time.perf_counter(), sizes.storm)  # until a commit is seen
    seen_commit = False
    list_latencies: list[float] = []
    storming = asyncio.Event()
    draining = asyncio.Event()

    async def operator() -> None:
        queue = {"status": ["open", "claimed", "escalated"], "severity": "high"}
        async with _LoadClient(api, api.operator_token, 1) as http:
            await http.get("/v1/exceptions")
            await storming.wait()
            while not (draining.is_set() and list_latencies):  # at least one, however short the storm
                sent = time.perf_counter()
                response = await http.get("/v1/exceptions", params=queue)
                if draining.is_set() and list_latencies:
                    break  # the storm ended while this one was answered: not during it
                list_latencies.append(time.perf_counter() - sent)
                if response.status_code != 200:
                    raise RuntimeError(f"the operator's list answered {response.status_code}: {response.text[:300]}")

    lister = asyncio.create_task(operator())
    stage = progress.stage(f"{group}: storm through the dispatcher", total=sizes.storm, unit="records")
    try:
        deadline = time.monotonic() + 1800
        while True:
            lag = await consumer_group_lag(settings, group_id, topic)
            now = time.perf_counter()
            stage.update(max(0, sizes.storm - lag))
            if not seen_commit and 0 < lag < sizes.storm:
                first, seen_commit = (now, lag), True
                storming.set()
            if lag == 0:
                break
            if not dispatcher.alive() or time.monotonic() > deadline or lister.done():
                if lister.done() and lister.exception() is not None:
                    raise RuntimeError("the operator's lists failed") from lister.exception()
                raise RuntimeError(
                    f"the dispatcher did not drain {sizes.storm} records (lag {lag}):\n{dispatcher.log()[-3000:]}"
                )
            await asyncio.sleep(0.05)
    finally:
        draining.set()
        storming.set()
        await lister
        stage.close()
        dispatcher.stop()
    started, lag_then = first  # from the first commit seen to the last
    per_second = lag_then / (now - started)
    lists = _Load(now - started, list_latencies, [])
    figures = [
        result(group, "storm: records per second, topic to committed rows", per_second, "/s", TARGET_STORM[group]),
        result(group, "operator list p99 during the storm", lists.percentile_ms(99), "ms", TARGET_STORM_LIST_MS),
    ]
    for figure in figures:
        measured(figure)

    body = orjson.dumps(
        {
            "action": "resolve",
            "filter": {"client_id": client, "rule_id": "bid_over_cap"},
            "decision": "false_positive",
            "reason": "the cap was raised upstream",
        }
    )
    async with _LoadClient(api, api.operator_token, 1) as http:
        with progress.stage(f"{group}: bulk resolve", total=1, unit="requests"):
            sent_at = time.perf_counter()
            answer = await http.post("/v1/exceptions/bulk", content=body)
            seconds = time.perf_counter() - sent_at
    if answer.status_code != 200 or answer.json()["changed"] != sizes.bulk:
        raise RuntimeError(f"the bulk resolve answered {answer.status_code}: {answer.text[:500]}")
    figure = result(group, f"bulk resolve of {sizes.bulk:,} exceptions", 1000 * seconds, "ms", TARGET_BULK_RESOLVE_MS)
    measured(figure)
    return [*figures, figure]
