"""docker-compose.yml, run: the images built from the Dockerfile and deploy/local/ (once per session,
cached by content), `docker compose up` with deploy/compose.local.yml, the health checks waited on,
a simulated stream through the containers, one exception resolved through the API and its outcome
read back from `exception-outcomes`, then the detector and the API SIGKILLed mid-stream and brought
back by their restart policy: every exception the simulator's ground truth demands held exactly
once, every outcome delivered once. `compose down -v` must leave nothing behind.

Secrets as a platform team runs them (.env.example): the stack gets its files from
scripts/compose-secrets.sh; the dispatcher, started without a token, picks up the one written into
its secret file, with no restart; no secret is in any container's environment or in the compose
model, each container has only its own secret files (the detector none), and the API's database
role reads and writes rows but may not CREATE TABLE.

Health checks: podman 4.3 runs them from systemd timers, absent here, so tests/fixtures/compose.py's
`HealthChecks` runs `podman healthcheck run` for each container at its own interval while compose
waits; docker-compose.yml's `depends_on` conditions are exercised as written (see that module).
The API has no host port here (podman's Docker API refuses port ranges): the test reaches the
API container at its bridge-network address, and Kafka through LOOPGATE_KAFKA_HOST_PORT.

One scenario in phases that build on each other (one stack: starting it is most of the cost); the
phases' wall times are printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate_schemas.exceptions import fingerprint_for
from loopgate_tools.processes import wait_until
from tests.chaos.harness import Publisher, ground_truth, halves
from tests.fixtures.api import held_exceptions
from tests.fixtures.compose import LONG_RUNNING, ONE_SHOTS, ComposeStack, HealthChecks, podman
from tests.fixtures.truth import expected_exception_ids

pytestmark = [pytest.mark.e2e]

EVENTS = 400
PUBLISH_SECONDS = 8.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def stack(compose_project: tuple[ComposeStack, HealthChecks]) -> ComposeStack:
    return compose_project[0]


class Phase:
    def __init__(self, stack: ComposeStack, name: str) -> None:
        self.stack, self.name = stack, name

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *_: object) -> None:
        self.stack.timings[self.name] = time.monotonic() - self.started


def token(stack: ComposeStack, role: str, name: str) -> str:
    """A real token from the CLI inside the API container, as the README tells an operator."""
    output = stack.exec("api", "loopgate", "api", "tokens", "create", "--role", role, "--name", name)
    return output.strip().splitlines()[-1]


def dispatcher_readiness(stack: ComposeStack) -> tuple[int, str | None]:
    """The dispatcher's /readyz: (status, reason); (0, None) while nothing listens yet (starting)."""
    try:
        answer = httpx.get(f"http://{stack.address('dispatcher')}:9102/readyz", timeout=5)
    except httpx.TransportError:
        return 0, None
    return answer.status_code, answer.json().get("reason")


# The compose secrets each service mounts at /run/secrets (docker-compose.yml): nobody else has any.
MOUNTED_SECRETS = {
    "postgres": {"postgres-password", "database-owner-url", "database-url"},
    "migrate": {"database-owner-url"},
    "api": {"database-url"},
    "dispatcher": {"dispatcher-api-token"},
}
URL_PASSWORD = re.compile(
    r"^postgresql\+asyncpg://(?P<role>[a-z_]+):(?P<password>[0-9a-f]{48})@postgres:5432/loopgate$"
)


def secret_values(stack: ComposeStack, dispatcher_token: str) -> dict[str, str]:
    """Every secret of the stack, as the string that must never show outside its files."""
    found = {
        "postgres superuser password": stack.secret("postgres-password"),
        "grafana admin password": stack.secret("grafana-admin-password"),
        "dispatcher token": dispatcher_token,
    }
    for name in ("database-owner-url", "database-url"):
        parsed = URL_PASSWORD.fullmatch(stack.secret(name))
        assert parsed is not None, name
        found[f"{parsed['role']} password"] = parsed["password"]
    assert set(found) == {
        "postgres superuser password",
        "grafana admin password",
        "dispatcher token",
        "loopgate_owner password",
        "loopgate_app password",
    }
    assert all(len(value) >= 32 for value in found.values()), "a secret too short to be searched for"
    return found


def assert_secrets_confined(stack: ComposeStack, dispatcher_token: str) -> None:
    """No secret in any container's environment (`podman inspect`) nor in the resolved compose model
    (`docker compose config`); each service has exactly its own secret files; the detector none."""
    values = secret_values(stack, dispatcher_token)
    containers = stack.all_containers()
    seen = {c["Config"]["Labels"]["com.docker.compose.service"] for c in containers}
    assert seen == set(LONG_RUNNING) | set(ONE_SHOTS)
    for container in containers:
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        env = container["Config"]["Env"]
        for what, value in values.items():
            assert not [entry for entry in env if value in entry], f"{what} in the environment of {service}"
        names = {entry.split("=", 1)[0] for entry in env}
        assert not names & {"LOOPGATE_DATABASE_URL", "LOOPGATE_API_TOKEN", "POSTGRES_PASSWORD"}, service
        mounted = {m["Destination"] for m in container["Mounts"] if m["Destination"].startswith("/run/secrets")}
        assert mounted == {f"/run/secrets/{name}" for name in MOUNTED_SECRETS.get(service, set())}, service
    config = stack.compose("config")
    for what, value in values.items():
        assert value not in config, f"{what} in `docker compose config`"
    # The detector parses untrusted input: no database URL or token in its environment or files.
    [detector] = stack.containers("detector")
    env_names = {entry.split("=", 1)[0] for entry in detector["Config"]["Env"]}
    assert not {n for n in env_names if n.startswith(("LOOPGATE_DATABASE_URL", "LOOPGATE_API_TOKEN"))}
    listed = podman_exec(detector["Id"], "sh", "-c", "ls -A /run/secrets 2>/dev/null; echo end")
    assert listed == "end\n", listed
    assert podman_exec(detector["Id"], "sh", "-c", "env | grep -ci postgres; true") == "0\n"


def podman_exec(container_id: str, *command: str) -> str:
    return podman("exec", container_id, *command)


def assert_application_role_has_rows_only(stack: ComposeStack) -> None:
    """The API's role (its URL from the secret file, from the host to the container's address):
    reads and writes rows, and is refused any schema change, a temporary table, the migration table."""
    url = stack.secret("database-url").replace("postgresql+asyncpg://", "postgresql://")
    url = url.replace("@postgres:", f"@{stack.address('postgres')}:")

    async def check() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            role = await conn.fetchrow(
                "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
            )
            assert tuple(role) == ("loopgate_app", False, False, False)
            assert await conn.fetchval("SELECT count(*) FROM exceptions") > 0  # rows: the stream's exceptions
            for refused in (
                "CREATE TABLE intruder (id int)",
                "CREATE TEMPORARY TABLE intruder (id int)",
                "ALTER TABLE exceptions ADD COLUMN intruder int",
                "DROP TABLE exceptions",
                "DELETE FROM alembic_version",
                "CREATE SCHEMA intruder",
            ):
                try:
                    await conn.execute(refused)
                except asyncpg.InsufficientPrivilegeError:
                    continue
                raise AssertionError(f"the application role may run: {refused}")
        finally:
            await conn.close()

    asyncio.run(check())


def client(stack: ComposeStack, secret: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url(), timeout=10, headers={"authorization": f"Bearer {secret}"})


def lags(stack: ComposeStack) -> tuple[int, int]:
    s = stack.settings

    async def measure() -> tuple[int, int]:
        detector = await consumer_group_lag(s, s.group(s.detector_app_id), s.upstream_topics())
        dispatcher = await consumer_group_lag(s, s.group(s.dispatcher_group), [s.exceptions_topic])
        return detector, dispatcher

    return asyncio.run(measure())


def settle(stack: ComposeStack) -> None:
    try:
        wait_until(lambda: lags(stack) == (0, 0), timeout=240, what="detector and dispatcher to commit", interval=1)
    except TimeoutError as err:
        raise AssertionError(f"{err}: lags {lags(stack)}\n{stack.logs()}") from None


def held(stack: ComposeStack, secret: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every exception the API holds, and the exception_id of every record it took in (history)."""
    with client(stack, secret) as http:
        return held_exceptions(http)


def assert_exactly_once(stack: ComposeStack, secret: str, expected_ids: set[str], fingerprints: set[str]) -> None:
    exceptions, record_ids = held(stack, secret)
    assert len(record_ids) == len(set(record_ids)), "a record was taken in twice"
    assert set(record_ids) == expected_ids, (
        f"lost {len(expected_ids - set(record_ids))}, unexpected {len(set(record_ids) - expected_ids)}"
    )
    assert sum(e["occurrences"] for e in exceptions) == len(record_ids)  # none counted twice
    assert sorted(e["fingerprint"] for e in exceptions) == sorted(fingerprints)  # none opened twice


def outcomes(stack: ComposeStack) -> list[Any]:
    return asyncio.run(read_topic(stack.settings, stack.settings.outcomes_topic))


def resolve(stack: ComposeStack, secret: str, exception_id: str, reason: str) -> None:
    with client(stack, secret) as http:
        answer = http.post(f"/v1/exceptions/{exception_id}/resolve", json={"decision": "confirmed", "reason": reason})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "resolved"


def resolve_in_console(stack: ComposeStack, secret: str, exception_id: str, reason: str) -> None:
    """Sign in to the console in headless Chromium (Debian's, through its chromedriver), claim the
    exception and resolve it. The image's console cookie is Secure (HTTPS only) and the test reaches
    the container over plain http: Chromium is told to treat that one origin as secure, so the
    image's default stays as it is in production."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    url = stack.api_url()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.add_argument(f"--unsafely-treat-insecure-origin-as-secure={url}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    wait = WebDriverWait(driver, 30, ignored_exceptions=(WebDriverException,))
    try:
        driver.get(f"{url}/console/sign-in")
        wait.until(ec.presence_of_element_located((By.ID, "token"))).send_keys(secret)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait.until(ec.presence_of_element_located((By.ID, "total")))  # the queue: signed in
        driver.get(f"{url}/console/exceptions/{exception_id}")
        wait.until(ec.element_to_be_clickable((By.ID, "claim"))).click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "Claimed"))
        Select(driver.find_element(By.ID, "decision")).select_by_value("false_positive")
        driver.find_element(By.ID, "reason").send_keys(reason)
        driver.find_element(By.ID, "resolve").click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "Resolved (false_positive)"))
    finally:
        driver.quit()


# pytest-timeout counts fixture setup: a cold machine builds the images first (minutes, once).
@pytest.mark.timeout(1800)
def test_the_compose_stack_runs_kills_and_restarts_with_nothing_lost(stack: ComposeStack) -> None:
    truth = ground_truth(EVENTS)
    first, second = halves(truth.events)

    # Up: everything at once, as .env.example says; the dispatcher waits for its token meanwhile.
    with Phase(stack, "compose up (all; the dispatcher waits for its token)"):
        stack.compose("up", "-d", timeout=600)
        stack.wait_healthy("kafka", "postgres", "api", "detector", "prometheus", "alertmanager")
    for one_shot in ONE_SHOTS:
        state = stack.container(one_shot)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), one_shot
    assert "role loopgate_app may read and write rows (no schema changes)" in stack.compose("logs", "migrate")
    waiting = stack.container("dispatcher")
    assert waiting["State"]["Status"] == "running"
    wait_until(
        lambda: dispatcher_readiness(stack) != (0, None), timeout=60, what="the dispatcher's /readyz", interval=0.5
    )
    assert dispatcher_readiness(stack) == (503, "token_missing")  # up, holding everything, not ready
    with Phase(stack, "tokens; the running dispatcher reads its secret file"):
        operator = token(stack, "operator", "alice")
        service = token(stack, "service", "dispatcher")
        (stack.secrets_dir / "dispatcher-api-token").write_text(service)  # in place, as `>` does
        stack.wait_healthy(*LONG_RUNNING)
    assert dispatcher_readiness(stack) == (200, None)
    ready = stack.container("dispatcher")  # the same container and process: no restart, no recreate
    assert (ready["Id"], ready["State"]["StartedAt"], ready["RestartCount"]) == (
        waiting["Id"],
        waiting["State"]["StartedAt"],
        waiting["RestartCount"],
    )
    with Phase(stack, "secrets: each only where it is needed"):
        assert_secrets_confined(stack, service)

    # A simulated stream through the containers: exactly the ground truth's exceptions.
    with Phase(stack, f"first half of {EVENTS} simulated events, settled"):
        Publisher(stack.settings, first, PUBLISH_SECONDS / 2).start().join()
        settle(stack)
    first_ids = expected_exception_ids(first)
    exceptions, _ = held(stack, operator)
    assert_exactly_once(stack, operator, first_ids, {e["fingerprint"] for e in exceptions})
    assert len(first_ids) > 10
    assert_application_role_has_rows_only(stack)

    # Resolve exceptions whose fingerprint the second half never fires again (a new firing would
    # legitimately open a new exception): one through the API, one through the console, each read
    # back at once, and one resolved just before the crash, whose outcome must be there once after it.
    later = {fingerprint_for(rule, ev.subject) for ev in second for rule in (*ev.expected_rules, "audit_sample")}
    candidates = [e for e in exceptions if e["fingerprint"] not in later and e["status"] != "resolved"]
    assert len(candidates) >= 3, "the stream gives too few exceptions to resolve"
    read_back, in_console, across_kill = candidates[:3]
    with Phase(stack, "resolve through the API, outcome read back"):
        resolve(stack, operator, read_back["id"], "checked in the compose test")
        wait_until(lambda: len(outcomes(stack)) >= 1, timeout=60, what="the outcome on exception-outcomes")
    [outcome] = outcomes(stack)
    assert outcome.key == read_back["id"].encode()
    event = orjson.loads(outcome.value)
    assert (event["type"], event["subject"]) == ("loopgate.exception.resolved", read_back["id"])
    assert (event["data"]["decision"], event["data"]["resolver"]) == ("confirmed", "alice")
    assert event["data"]["reason"] == "checked in the compose test"

    with Phase(stack, "resolve through the console (Chromium), outcome read back"):
        resolve_in_console(stack, operator, in_console["id"], "seen in the console")
        wait_until(lambda: len(outcomes(stack)) >= 2, timeout=60, what="the console's outcome on exception-outcomes")
    console_outcome = orjson.loads(next(m.value for m in outcomes(stack) if m.key == in_console["id"].encode()))
    assert (console_outcome["data"]["decision"], console_outcome["data"]["resolver"]) == ("false_positive", "alice")
    assert console_outcome["data"]["reason"] == "seen in the console"

    # The second half, with the detector and the API SIGKILLed mid-stream; their restart policy
    # brings them back, and the dispatcher retries the API meanwhile.
    with Phase(stack, "second half, detector and API SIGKILLed and restarted, settled"):
        resolve(stack, operator, across_kill["id"], "resolved just before the crash")
        publisher = Publisher(stack.settings, second, PUBLISH_SECONDS / 2).start()
        publisher.wait_share(0.4)
        detector_restarts = stack.crash("detector")
        api_restarts = stack.crash("api")
        stack.wait_restarted("detector", detector_restarts)
        stack.wait_restarted("api", api_restarts)
        publisher.join()
        settle(stack)
    assert_exactly_once(stack, operator, set(truth.ids), set(truth.fingerprints))
    wait_until(lambda: len(outcomes(stack)) >= 3, timeout=60, what="the third outcome after the restart")
    delivered = [(m.key, orjson.loads(m.value)["id"]) for m in outcomes(stack)]
    resolved = [read_back["id"].encode(), in_console["id"].encode(), across_kill["id"].encode()]
    assert sorted(key for key, _ in delivered) == sorted(resolved)
    assert len({cloudevent_id for _, cloudevent_id in delivered}) == 3  # each outcome once
    stack.wait_healthy(*LONG_RUNNING)

    # Two API replicas and two detectors: Prometheus finds each by DNS service discovery, one
    # target per replica; each detector has a data directory (volume) of its own.
    with Phase(stack, "--scale api=2 --scale detector=2, Prometheus scraping each replica"):
        stack.compose("up", "-d", "--no-recreate", "--scale", "api=2", "--scale", "detector=2", timeout=300)
        for service, port in (("api", 8000), ("detector", 9101)):
            wait_until(
                lambda: [healthy(c) for c in stack.containers(service)] == [True, True],  # noqa: B023 (called here)
                timeout=180,
                what=f"two healthy {service} replicas",
                interval=0.5,
            )
            replicas = {f"{address(c)}:{port}" for c in stack.containers(service)}
            assert len(replicas) == 2
            wait_until(
                lambda: scraped(stack, f"loopgate-{service}") == replicas,  # noqa: B023 (called here)
                timeout=120,
                what=f"Prometheus to scrape {sorted(replicas)}",
                interval=1,
            )
    data_dirs = [
        next(m["Name"] for m in c["Mounts"] if m["Destination"] == "/var/lib/loopgate/detector")
        for c in stack.containers("detector")
    ]
    assert len(set(data_dirs)) == 2, data_dirs


def healthy(container: dict[str, Any]) -> bool:
    return bool((container["State"].get("Health") or {}).get("Status") == "healthy")


def address(container: dict[str, Any]) -> str:
    [found] = [n["IPAddress"] for n in container["NetworkSettings"]["Networks"].values() if n.get("IPAddress")]
    return str(found)


def scraped(stack: ComposeStack, job: str) -> set[str]:
    """The instances of `job` Prometheus (in the stack) has scraped successfully."""
    answer = httpx.get(f"http://{stack.address('prometheus')}:9090/api/v1/targets", timeout=5)
    answer.raise_for_status()
    return {
        t["labels"]["instance"]
        for t in answer.json()["data"]["activeTargets"]
        if t["labels"]["job"] == job and t["health"] == "up"
    }
