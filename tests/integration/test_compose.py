"""The docker-compose deployment agrees with the code it deploys.

Static checks: `docker compose config` needs the docker client and its compose plugin, not a
Docker engine. The compose file is rendered with `.env.example` as its only environment and the
secret files `scripts/compose-secrets.sh` writes (SECRETS_DIR), so these tests also prove that the
documented steps are enough to bring the stack up; each Loopgate service's settings are loaded as
its container would, its `*_FILE` settings reading the host file behind the compose secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

import loopgate.common.metrics  # noqa: F401  (registers every Loopgate metric in REGISTRY)
from loopgate.common.settings import Settings
from loopgate_schemas import topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS_SCRIPT = ROOT / "scripts" / "compose-secrets.sh"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
KAFKA_POM = ROOT / "deploy" / "kafka" / "pom.xml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_RULES = ROOT / "deploy" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

LONG_RUNNING = {"kafka", "postgres", "api", "detector", "dispatcher", "prometheus", "alertmanager", "grafana"}
ONE_SHOTS = {"topics", "migrate"}
LOOPGATE_SERVICES = {"topics", "migrate", "api", "detector", "dispatcher"}
CONTRACT_TOPICS = {
    topics.BIDS,
    topics.TRAFFICKING,
    topics.CONTENT,
    topics.EXCEPTIONS,
    topics.OUTCOMES,
    topics.EVENTS_DLQ,
}
# The port setting each scraped Loopgate service serves /metrics on.
METRICS_PORT_SETTING = {
    "api": "api_port",
    "detector": "detector_metrics_port",
    "dispatcher": "dispatcher_metrics_port",
}
LOOPGATE_VARIABLE = re.compile(r"\bLOOPGATE_[A-Z0-9_]+\b")
LOOPGATE_METRIC = re.compile(r"\bloopgate_[a-z0-9_]+\b")
# Series names prometheus-client exposes for one metric family, by type.
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secret files, as .env.example's step 1 makes them."""
    directory = tmp_path_factory.mktemp("compose") / "secrets"
    subprocess.run(["bash", str(SECRETS_SCRIPT), str(directory)], check=True, capture_output=True, timeout=30)
    return directory


@pytest.fixture(scope="module")
def compose(secrets_dir: Path) -> dict[str, Any]:
    """The compose model as docker compose resolves it: anchors merged, variables substituted."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed")
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if plugin.returncode != 0:
        pytest.fail(f"the docker compose CLI plugin is missing: {plugin.stderr}")
    # Only .env.example may supply the variables the file reads, not the caller's environment.
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    env = {name: value for name, value in os.environ.items() if name not in referenced}
    env["SECRETS_DIR"] = str(secrets_dir)
    command = [docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config"]
    result = subprocess.run(
        [*command, "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(compose: dict[str, Any], service: str) -> dict[str, str]:
    variables = services(compose)[service].get("environment") or {}
    return {name: value or "" for name, value in variables.items()}


class ComposeSettings(Settings):
    """Settings from the values given alone: this test process's own LOOPGATE_* variables stay out."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def mounted_secrets(compose: dict[str, Any], service: str) -> dict[str, Path]:
    """The service's secret files: path inside the container -> the host file behind it."""
    files = {name: Path(secret["file"]) for name, secret in (compose.get("secrets") or {}).items()}
    return {entry["target"]: files[entry["source"]] for entry in services(compose)[service].get("secrets") or []}


def service_settings(compose: dict[str, Any], service: str) -> Settings:
    """The Settings a Loopgate container gets from its compose environment (validated by pydantic),
    a `*_FILE` setting reading the host file of the compose secret mounted at its path."""
    inside = mounted_secrets(compose, service)
    values: dict[str, Any] = {}
    for name, value in environment(compose, service).items():
        if name.startswith("LOOPGATE_"):
            field_name = name.removeprefix("LOOPGATE_").lower()
            values[field_name] = inside.get(value, value) if field_name.endswith("_file") else value
    return ComposeSettings(**values)


def exported_series() -> set[str]:
    """Every series name the Loopgate processes can expose, from the prometheus-client registry."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))  # panels inside collapsed rows


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA_DASHBOARDS.glob("*.json"))}


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


# --- services and their order ---------------------------------------------------------------


def test_compose_defines_the_whole_stack(compose: dict[str, Any]) -> None:
    assert LONG_RUNNING | ONE_SHOTS <= set(services(compose))


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if name in ONE_SHOTS:
            assert service.get("restart", "no") == "no", name
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            assert spec["condition"] == wanted, f"{name} -> {dependency}"
    required = {
        "topics": {"kafka"},
        "migrate": {"postgres"},
        "api": {"postgres", "migrate", "topics"},
        "detector": {"kafka", "topics"},
        "dispatcher": {"kafka", "topics", "api"},
        "grafana": {"prometheus"},
        "prometheus": {"alertmanager"},
    }
    for name, dependencies in required.items():
        assert dependencies <= set(services(compose)[name].get("depends_on") or {}), name


def test_image_runs_the_loopgate_command_as_a_non_root_user() -> None:
    instructions = [line.split(maxsplit=1) for line in DOCKERFILE.read_text().splitlines() if line[:1].isupper()]
    users = [argument for keyword, argument in instructions if keyword == "USER"]
    entrypoints = [argument for keyword, argument in instructions if keyword == "ENTRYPOINT"]
    assert users and users[-1] not in ("root", "0")
    assert entrypoints and json.loads(entrypoints[-1]) == ["loopgate"]
    assert "loopgate" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_kafka_image_is_the_broker_version_the_tests_use(compose: dict[str, Any]) -> None:
    pom = "{http://maven.apache.org/POM/4.0.0}"
    version = ET.parse(KAFKA_POM).getroot().findtext(f"{pom}properties/{pom}kafka.version")
    assert services(compose)["kafka"]["image"] == f"apache/kafka:{version}"


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"


# --- settings and topics ------------------------------------------------------------------


def test_every_loopgate_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    written = set(LOOPGATE_VARIABLE.findall(COMPOSE_FILE.read_text()))
    written |= set(LOOPGATE_VARIABLE.findall(DOCKERFILE.read_text()))
    written |= set(LOOPGATE_VARIABLE.findall(ENV_EXAMPLE.read_text()))
    for name in services(compose):
        written |= {variable for variable in environment(compose, name) if variable.startswith("LOOPGATE_")}
    unknown = {v for v in written if v.removeprefix("LOOPGATE_").lower() not in Settings.model_fields}
    assert unknown == set()
    for name in LOOPGATE_SERVICES:
        service_settings(compose, name)  # the values validate too (ports are ints, and so on)


def test_services_use_the_contract_topic_names(compose: dict[str, Any]) -> None:
    for name in LOOPGATE_SERVICES:
        settings = service_settings(compose, name)
        assert settings.topic_prefix == "", name
        assert {settings.topic(topic) for topic in CONTRACT_TOPICS} == CONTRACT_TOPICS
    # Any topic-like name written anywhere in the compose model is one Loopgate really uses.
    known = set(ComposeSettings().topic_partitions())
    mentioned = {
        token
        for text in strings_in(compose)
        for token in re.findall(r"[a-z0-9][a-z0-9.-]*", text)
        if re.search(r"events|exception|outcomes|dlq", token)
    }
    assert mentioned <= known


def test_services_reach_kafka_postgres_and_api_at_their_compose_addresses(compose: dict[str, Any]) -> None:
    advertised = environment(compose, "kafka")["KAFKA_ADVERTISED_LISTENERS"]
    api_settings = service_settings(compose, "api")
    postgres = environment(compose, "postgres")
    for name in LOOPGATE_SERVICES:
        settings = service_settings(compose, name)
        assert f"//{settings.kafka_bootstrap}" in advertised, name
        if name in DATABASE_ROLES:  # the URL its secret file holds
            url = urlsplit(settings.database_url)
            assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{postgres['POSTGRES_DB']}"), name
            assert url.username == DATABASE_ROLES[name], name
        api_url = urlsplit(settings.api_url)
        assert (api_url.hostname, api_url.port) == ("api", api_settings.api_port), name


# --- secrets: files, each only where it is needed -----------------------------------------

# The compose secrets each service mounts; every other service mounts none (the detector, which
# parses untrusted input, and `topics` included).
MOUNTED_SECRETS = {
    "postgres": {"postgres-password", "database-owner-url", "database-url"},
    "migrate": {"database-owner-url"},
    "api": {"database-url"},
    "dispatcher": {"dispatcher-api-token"},
    "grafana": {"grafana-admin-password"},
}
# The PostgreSQL role each database user connects as (deploy/postgres/initdb.d makes both).
DATABASE_ROLES = {"migrate": "loopgate_owner", "api": "loopgate_app"}
# Settings that are secrets: the ones with a `_FILE` variant (Settings reads it with secrets.py).
SECRET_SETTINGS = {name for name in Settings.model_fields if f"{name}_file" in Settings.model_fields}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|DATABASE_URL|_KEY\b", re.IGNORECASE)


def test_the_secret_settings_are_known() -> None:
    # The rule below must cover the secrets that exist; a new `_FILE` setting joins it by itself.
    assert {"api_token", "database_url", "kafka_sasl_password"} <= SECRET_SETTINGS


def test_no_loopgate_secret_in_any_service_environment(compose: dict[str, Any], secrets_dir: Path) -> None:
    """A secret is a file mounted into its service, never an environment variable (which
    `docker inspect` shows, and every process in the container inherits)."""
    written = {path.name: path.read_text() for path in secrets_dir.iterdir()}
    passwords = {urlsplit(written[name]).password for name in ("database-owner-url", "database-url")}
    values = {value for value in (*written.values(), *passwords) if value}
    assert len(values) == 6  # four files with a secret (the token's is empty) and two passwords
    for name in services(compose):
        env = environment(compose, name)
        inline = {
            v for v in env if v.startswith("LOOPGATE_") and v.removeprefix("LOOPGATE_").lower() in SECRET_SETTINGS
        }
        assert inline == set(), f"{name}: {inline}"
        for variable, value in env.items():
            assert not [secret for secret in values if secret in value], f"{name}: {variable} holds a secret"
            if SECRET_NAME.search(variable):
                # only a file's path, the file one of the service's own compose secrets
                assert variable.endswith("_FILE"), f"{name}: {variable}"
                assert value in mounted_secrets(compose, name), f"{name}: {variable}={value} is not mounted"
    # and none in the file itself (a value written into a shared block, a default after `:-`);
    # the commented example of your own Kafka's settings is no value
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    for setting in SECRET_SETTINGS:
        assert not re.search(rf"\bLOOPGATE_{setting.upper()}\s*:", text), setting


def test_each_secret_is_mounted_only_where_it_is_needed(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        mounted = {entry["source"] for entry in service.get("secrets") or []}
        assert mounted == MOUNTED_SECRETS.get(name, set()), name
        for entry in service.get("secrets") or []:
            assert entry["target"] == f"/run/secrets/{entry['source']}", name
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"name", "file"}, name  # a file, not an environment variable's value
    assert set(compose["secrets"]) == set().union(*MOUNTED_SECRETS.values())


def test_migrate_owns_the_schema_and_grants_the_api_role_rows_only(compose: dict[str, Any]) -> None:
    migrate = services(compose)["migrate"]["command"]
    assert migrate[:2] == ["api", "migrate"]
    assert migrate[migrate.index("--grant-to") + 1] == DATABASE_ROLES["api"]
    api = service_settings(compose, "api")
    assert api.database_migrate_on_start is False  # its role may not migrate: it checks the schema is at head
    assert service_settings(compose, "migrate").database_migrate_on_start is True
    assert DATABASE_ROLES["migrate"] != DATABASE_ROLES["api"]
    # PostgreSQL's superuser is neither: only the init script uses it, from its own secret file.
    postgres = environment(compose, "postgres")
    assert postgres["POSTGRES_USER"] not in DATABASE_ROLES.values()
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    mounts = {v["target"]: Path(v["source"]) for v in services(compose)["postgres"]["volumes"] if v["type"] == "bind"}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert init == ROOT / "deploy" / "postgres" / "initdb.d"
    script = (init / "10-loopgate-roles.sh").read_text()
    for role in DATABASE_ROLES.values():
        assert f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    assert os.access(init / "10-loopgate-roles.sh", os.X_OK)  # the postgres image executes it, else sources it


# --- metrics: Prometheus and Grafana ------------------------------------------------------


def test_prometheus_scrapes_each_service_on_its_configured_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        targets = [t.rsplit(":", 1) for static in job.get("static_configs", []) for t in static["targets"]]
        # DNS service discovery (A records of a compose service name: every replica), with its port
        targets += [[name, str(sd["port"])] for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
        assert targets, job["job_name"]
        for host, port in targets:
            assert host in services(compose), host
            scraped[host] = port
            assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
    # every Loopgate service is discovered by DNS, so scaled replicas are scraped one by one
    discovered = {
        name for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", []) for name in sd["names"]
    }
    assert discovered == set(METRICS_PORT_SETTING)
    for name, port_setting in METRICS_PORT_SETTING.items():
        port = getattr(service_settings(compose, name), port_setting)
        assert scraped.get(name) == str(port), name
    # A server inside a container must listen on every interface to be scraped from another one.
    assert service_settings(compose, "api").api_host == "0.0.0.0"
    published = {p["target"] for p in services(compose)["api"].get("ports", [])}
    assert published == {service_settings(compose, "api").api_port}


def test_dashboards_reference_only_metrics_loopgate_exports() -> None:
    exported = exported_series()
    assert dashboards(), "no dashboard in deploy/grafana/dashboards"
    for file_name, dashboard in dashboards().items():
        for panel in dashboard_panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                used = set(LOOPGATE_METRIC.findall(target["expr"]))
                assert used, f"{file_name} / {panel['title']}: {target['expr']}"
                assert used <= exported, f"{file_name} / {panel['title']}: {used - exported}"


def test_dashboard_covers_exceptions_backlog_resolution_and_pipeline_health() -> None:
    used = {
        metric
        for dashboard in dashboards().values()
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        for metric in LOOPGATE_METRIC.findall(target["expr"])
    }
    assert {
        "loopgate_exceptions_raised_total",
        "loopgate_open_exceptions",
        "loopgate_time_to_resolve_seconds_bucket",
        "loopgate_events_consumed_total",
        "loopgate_dlq_messages_total",
        "loopgate_exceptions_delivered_total",
        "loopgate_exceptions_delivery_failed_total",
        "loopgate_outbox_pending",
        "loopgate_resolutions_total",  # verdicts: decisions and precision per rule
        "loopgate_rule_time_to_resolve_seconds_bucket",
    } <= used


def test_grafana_provisions_the_datasource_and_dashboards_it_mounts(compose: dict[str, Any]) -> None:
    datasources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert urlsplit(datasource["url"]).hostname in services(compose)
    for dashboard in dashboards().values():
        for panel in dashboard_panels(dashboard["panels"]):
            if "datasource" in panel:  # the dashboard's datasource variable, whose default is this one
                assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert (variable["type"], variable["query"]) == ("datasource", datasource["type"])
        assert variable["current"]["value"] == datasource["uid"]
    volumes = services(compose)["grafana"]["volumes"]
    mounts = {v["target"]: Path(v["source"]).resolve() for v in volumes if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "loopgate.yml").read_text())
    for provider in providers["providers"]:
        assert mounts[provider["options"]["path"]] == GRAFANA_DASHBOARDS


def test_prometheus_loads_the_alert_rules_and_sends_alerts_to_the_alertmanager(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    prometheus = services(compose)["prometheus"]
    mounts = {v["target"]: Path(v["source"]).resolve() for v in prometheus["volumes"] if v["type"] == "bind"}
    config_dir = Path(next(a for a in prometheus["command"] if a.startswith("--config.file=")).split("=", 1)[1]).parent
    for pattern in config["rule_files"]:  # relative to the config file, inside the container
        directory, _, glob = str(config_dir / pattern).rpartition("/")
        assert mounts[directory] == PROMETHEUS_RULES, pattern
        assert list(PROMETHEUS_RULES.glob(glob)), pattern
    (alerting,) = config["alerting"]["alertmanagers"]
    (target,) = alerting["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    alertmanager = services(compose)["alertmanager"]
    assert host == "alertmanager"
    assert int(port) in {p["target"] for p in alertmanager["ports"]}
    am_mounts = {v["target"]: Path(v["source"]).resolve() for v in alertmanager["volumes"] if v["type"] == "bind"}
    am_config = next(a for a in alertmanager["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    assert am_mounts[am_config] == ALERTMANAGER_CONFIG
