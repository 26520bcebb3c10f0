"""deploy/helm/loopgate renders, lints and validates: `helm lint` and `helm template` (Helm v4 built
from the Go module proxy by scripts/install-helm.sh, once, cached by version) for the default
values and deploy/helm/values-production.yaml; every rendered object decoded strictly against the
Kubernetes API types by tools/k8scheck (k8s.io/api; ServiceMonitor and PrometheusRule by the
prometheus-operator's types). Hostile values fail the render with a message naming the value.

Needs Go (/usr/local/go/bin/go or on PATH) the first time: without it these tests fail, not skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "loopgate"
PRODUCTION = ROOT / "deploy" / "helm" / "values-production.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules"
RELEASE = "lg"


def built(script: str) -> Path:
    result = subprocess.run([str(ROOT / "scripts" / script)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"scripts/{script} failed (Go is needed to build it once):\n{result.stderr[-3000:]}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), result.stdout
    return path


@pytest.fixture(scope="module")
def helm() -> Path:
    return built("install-helm.sh")


@pytest.fixture(scope="module")
def k8scheck() -> Path:
    return built("install-k8scheck.sh")


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)


def template(helm: Path, *args: str) -> str:
    result = run_helm(helm, "template", RELEASE, str(CHART), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def strictly_decoded(k8scheck: Path, manifest: str) -> list[str]:
    result = subprocess.run([str(k8scheck)], input=manifest, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return sorted(line.removeprefix("ok ") for line in result.stdout.splitlines())


def objects(manifest: str) -> dict[str, dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(manifest) if doc]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in docs}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def mounted(pod: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The Secret volume the pod's first container mounts at `path` (None: nothing there)."""
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0].get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return volumes[mounts[path]]["secret"] if path in mounts else None


DEFAULT_OBJECTS = sorted(
    [
        "ServiceAccount/lg-loopgate",
        "Deployment/lg-loopgate-api",
        "Service/lg-loopgate-api",
        "PodDisruptionBudget/lg-loopgate-api",
        "Deployment/lg-loopgate-dispatcher",
        "Service/lg-loopgate-dispatcher",
        "StatefulSet/lg-loopgate-detector",
        "Service/lg-loopgate-detector",
        "Job/lg-loopgate-topics",
        "Job/lg-loopgate-migrate",
    ]
)


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_chart_lints_clean(helm: Path, values: list[str]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_values_render_objects_that_decode_strictly(helm: Path, k8scheck: Path) -> None:
    manifest = template(helm)
    assert strictly_decoded(k8scheck, manifest) == DEFAULT_OBJECTS
    rendered = objects(manifest)
    assert "Secret" not in {name.split("/")[0] for name in rendered}  # secrets are the cluster's, never values
    assert rendered["StatefulSet/lg-loopgate-detector"]["spec"]["replicas"] == 1
    assert rendered["Deployment/lg-loopgate-api"]["spec"]["replicas"] == 2


def test_production_values_render_objects_that_decode_strictly(helm: Path, k8scheck: Path) -> None:
    manifest = template(helm, "-f", str(PRODUCTION))
    expected = sorted([*DEFAULT_OBJECTS, "ServiceMonitor/lg-loopgate", "PrometheusRule/lg-loopgate"])
    assert strictly_decoded(k8scheck, manifest) == expected
    rendered = objects(manifest)
    assert rendered["StatefulSet/lg-loopgate-detector"]["spec"]["replicas"] == 6
    assert rendered["Deployment/lg-loopgate-api"]["spec"]["replicas"] == 3
    assert rendered["PodDisruptionBudget/lg-loopgate-api"]["spec"]["minAvailable"] == 2
    monitor = rendered["ServiceMonitor/lg-loopgate"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["jobLabel"] == "loopgate.io/job"
    jobs = {doc["metadata"]["labels"].get("loopgate.io/job") for doc in rendered.values() if doc["kind"] == "Service"}
    assert jobs == {"loopgate-api", "loopgate-detector", "loopgate-dispatcher"}  # the rules' job=~"loopgate-.*"


def test_prometheus_rule_is_deploy_prometheus_rules_as_they_are(helm: Path) -> None:
    rendered = objects(template(helm, "--set", "metrics.prometheusRule.enabled=true"))
    groups = rendered["PrometheusRule/lg-loopgate"]["spec"]["groups"]
    expected = [g for path in sorted(RULES.glob("*.yml")) for g in yaml.safe_load(path.read_text())["groups"]]
    assert groups == expected
    down = next(r for g in groups for r in g["rules"] if r.get("alert") == "LoopgateTargetDown")
    assert "{{ $labels.job }}" in down["annotations"]["summary"]  # Prometheus' template, untouched by Helm


def test_every_pod_runs_as_non_root_with_secrets_from_kubernetes_secrets(helm: Path) -> None:
    rendered = objects(template(helm, "-f", str(PRODUCTION)))
    pods = {
        name: doc["spec"]["template"]["spec"] for name, doc in rendered.items() if "template" in doc.get("spec", {})
    }
    assert len(pods) == 5
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
        env = env_of(container)
        # Kafka credentials as files (the settings' *_FILE), the rest by reference to the Secret.
        assert env["LOOPGATE_KAFKA_SASL_PASSWORD_FILE"] == "/var/run/secrets/loopgate/kafka/password", name
        assert "LOOPGATE_KAFKA_SASL_PASSWORD" not in env, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-credentials"]["secret"]["secretName"] == "loopgate-kafka", name
        assert volumes["kafka-ca"]["secret"]["secretName"] == "loopgate-kafka-ca", name
    # The database URL and the token as files from their Secrets, never in the environment.
    api_pod = pods["Deployment/lg-loopgate-api"]
    api_env = env_of(api_pod["containers"][0])
    assert api_env["LOOPGATE_DATABASE_URL_FILE"] == "/var/run/secrets/loopgate/database/url"
    assert "LOOPGATE_DATABASE_URL" not in api_env
    assert mounted(api_pod, "/var/run/secrets/loopgate/database") == {
        "secretName": "loopgate-database",
        "defaultMode": 0o440,
        "items": [{"key": "url", "path": "url"}],
    }
    assert api_env["LOOPGATE_DATABASE_MIGRATE_ON_START"] == "false"  # its role may not change the schema (ownerKey)
    dispatcher_pod = pods["Deployment/lg-loopgate-dispatcher"]
    dispatcher_env = env_of(dispatcher_pod["containers"][0])
    assert dispatcher_env["LOOPGATE_API_TOKEN_FILE"] == "/var/run/secrets/loopgate/dispatcher/token"
    assert "LOOPGATE_API_TOKEN" not in dispatcher_env
    # optional: the dispatcher runs unready (token_missing) until the token is made after the install
    assert mounted(dispatcher_pod, "/var/run/secrets/loopgate/dispatcher") == {
        "secretName": "loopgate-dispatcher-token",
        "optional": True,
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "token"}],
    }
    assert dispatcher_env["LOOPGATE_API_URL"] == "http://lg-loopgate-api:8000"
    # The detector parses untrusted input: it gets neither the database URL nor the API token.
    detector_env = env_of(pods["StatefulSet/lg-loopgate-detector"]["containers"][0])
    assert not {"LOOPGATE_DATABASE_URL_FILE", "LOOPGATE_API_TOKEN_FILE"} & set(detector_env)
    assert mounted(pods["StatefulSet/lg-loopgate-detector"], "/var/run/secrets/loopgate/database") is None


def test_detectors_each_own_a_volume_and_wait_for_readyz(helm: Path) -> None:
    rendered = objects(template(helm, "-f", str(PRODUCTION)))
    detector = rendered["StatefulSet/lg-loopgate-detector"]["spec"]
    (claim,) = detector["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert detector["podManagementPolicy"] == "Parallel"
    (container,) = detector["template"]["spec"]["containers"]
    assert {"name": "data", "mountPath": "/var/lib/loopgate/detector"} in container["volumeMounts"]
    assert env_of(container)["LOOPGATE_DETECTOR_DATA_DIR"] == "/var/lib/loopgate/detector"
    assert env_of(container)["LOOPGATE_UPSTREAM_PARTITIONS"] == "6"
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert startup["periodSeconds"] * startup["failureThreshold"] == 3600
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9101}]


def test_topics_then_migration_run_as_hook_jobs(helm: Path) -> None:
    rendered = objects(template(helm))
    topics, migrate = rendered["Job/lg-loopgate-topics"], rendered["Job/lg-loopgate-migrate"]
    for job in (topics, migrate):
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert int(topics["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        migrate["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    topics_container = topics["spec"]["template"]["spec"]["containers"][0]
    migrate_container = migrate["spec"]["template"]["spec"]["containers"][0]
    assert topics_container["args"] == ["topics", "create"]
    assert migrate_container["args"] == ["api", "migrate"]
    assert mounted(migrate["spec"]["template"]["spec"], "/var/run/secrets/loopgate/database")["items"] == [
        {"key": "url", "path": "url"}  # default values: one URL, the API migrates too
    ]
    assert "LOOPGATE_DATABASE_URL_FILE" not in env_of(topics_container)
    assert env_of(migrate_container)["LOOPGATE_DATABASE_URL_FILE"] == "/var/run/secrets/loopgate/database/url"
    assert mounted(migrate["spec"]["template"]["spec"], "/var/run/secrets/loopgate/database") is not None
    assert mounted(topics["spec"]["template"]["spec"], "/var/run/secrets/loopgate/database") is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["--set", "detector.replicas=7"],
            "detector.replicas (7) is more than kafka.partitions.upstream (6)",
        ),
        (
            ["-f", str(PRODUCTION), "--set", "detector.replicas=7"],
            "detector.replicas (7) is more than kafka.partitions.upstream (6)",
        ),
        (
            ["--set", "database.existingSecret="],
            "database.existingSecret: the name of a Secret holding the database URL",
        ),
        (["--set", "dispatcherToken.existingSecret="], "dispatcherToken.existingSecret: the name of a Secret"),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "detector.replica=3"], "additional properties 'replica' not allowed"),
        (
            ["--set", "kafka.securityProtocol=SASL_SSL"],
            "kafka.existingSecret: a Secret with keys username and password",
        ),
        (["--set", "kafka.securityProtocol=TLS"], "/kafka/securityProtocol"),
        (["--set", "env.LOOPGATE_DATABASE_URL=postgresql://u:p@db/x"], "env.LOOPGATE_DATABASE_URL is a secret"),
        (["--set", "env.lowercase=1"], "'lowercase' does not match pattern '^LOOPGATE_[A-Z0-9_]+$'"),
        (["--set", "podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot"),
        (["--set", "database.existingSecret=Not_A_Name"], "/database/existingSecret"),
        (["--set", "detector.replicas=0"], "/detector/replicas"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name: the ServiceAccount to run as is required"),
    ],
    ids=[
        "detectors-beyond-partitions",
        "production-detectors-beyond-partitions",
        "no-database-secret",
        "no-token-secret",
        "unknown-top-level-value",
        "misspelt-nested-value",
        "sasl-without-credentials",
        "unknown-security-protocol",
        "secret-in-env",
        "env-not-a-setting",
        "root-allowed",
        "secret-name-not-a-dns-name",
        "no-detector",
        "no-service-account",
    ],
)
def test_hostile_values_fail_the_render_naming_the_value(helm: Path, values: list[str], message: str) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), *values)
    assert result.returncode != 0, result.stdout[:2000]
    assert message in result.stderr
    assert result.stdout == ""


def test_k8scheck_refuses_unknown_fields_kinds_and_duplicates(helm: Path, k8scheck: Path) -> None:
    manifest = template(helm, "--set", "metrics.prometheusRule.enabled=true")
    unknown_kind = "\n---\napiVersion: v1\nkind: Pod2\nmetadata:\n  name: x\n"
    second_api_service = "\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: lg-loopgate-api\n"
    cases = {
        manifest.replace("readinessProbe:", "readinesProbe:", 1): 'unknown field "readinesProbe"',
        manifest.replace("  groups:", "  group:", 1): "PrometheusRule: error unmarshaling JSON: while decoding JSON: "
        'json: unknown field "group"',
        manifest + unknown_kind: "/v1, Kind=Pod2 is not a kind this check knows",
        manifest + second_api_service: "Service/lg-loopgate-api rendered twice",
        manifest.replace("replicas: 2", "replicas: two", 1): "cannot unmarshal string into Go struct field",
        "": "no objects in the input",
    }
    for broken, message in cases.items():
        result = subprocess.run([str(k8scheck)], input=broken, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, message
        assert message in result.stderr, result.stderr


def test_with_production_values_the_schema_owner_migrates_and_the_api_only_reads_and_writes_rows(helm: Path) -> None:
    rendered = objects(template(helm, "-f", str(PRODUCTION)))
    migrate = rendered["Job/lg-loopgate-migrate"]["spec"]["template"]["spec"]
    api = rendered["Deployment/lg-loopgate-api"]["spec"]["template"]["spec"]

    assert migrate["containers"][0]["args"] == ["api", "migrate", "--grant-to", "loopgate_app"]
    assert mounted(migrate, "/var/run/secrets/loopgate/database")["items"] == [{"key": "owner-url", "path": "url"}]
    assert "LOOPGATE_DATABASE_MIGRATE_ON_START" not in env_of(migrate["containers"][0])
    assert mounted(api, "/var/run/secrets/loopgate/database")["items"] == [{"key": "url", "path": "url"}]
    assert env_of(api["containers"][0])["LOOPGATE_DATABASE_MIGRATE_ON_START"] == "false"


def test_an_application_role_name_that_would_need_quoting_is_refused(helm: Path) -> None:
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "--set", "database.ownerKey=owner-url", "--set", "database.appRole=App;x"
    )

    assert result.returncode != 0
    assert "/database/appRole" in result.stderr
