"""deploy/, checked as far as this machine can (it has no container engine): hadolint on the
Dockerfile, yamllint, both kustomize trees rendered and every object validated against the
Kubernetes schemas, the Compose stack's shape, every LEDGER_ variable a real setting, and every
metric the dashboard and the alert rules name exported by the service."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from ledger_service.api.app import create_ops_app
from ledger_service.config import Settings
from tests.fakes import InMemoryLedger

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.32.0"
ROLES = ("serve", "consume", "project", "react")
USAGE_PARTITIONS = 6
METRIC = re.compile(r"\bledger_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the deploy checks render kustomize with kubectl, which is missing")
        pytest.skip("kubectl is not installed")
    return found


def rendered(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / overlay)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    done = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "style", str(DEPLOY / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_pinned_slim_and_runs_as_nobody_in_particular() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", dockerfile)
    assert dockerfile.count("FROM ${PYTHON_IMAGE}") == 2, "multi-stage, one pinned base"
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["ledger"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile
    assert not re.search(r"apt-get install|gcc|build-essential", dockerfile), "no compilers"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:1] == ["*"], "everything ignored but what is listed"


def test_yamllint_is_clean() -> None:
    done = subprocess.run(
        [str(BIN / "yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint"), str(DEPLOY)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_every_rendered_object_is_valid_kubernetes(overlay: str) -> None:
    objects = rendered(overlay)
    custom = {"PrometheusRule", "ServiceMonitor"}  # the Prometheus Operator's: checked below
    for obj in objects:
        if obj["kind"] in custom:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert {o["kind"] for o in objects} >= {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
        "NetworkPolicy", "Job", "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip
    assert "Secret" not in {o["kind"] for o in objects}, "secrets are referenced, never held"


def test_the_four_roles_are_probed_bounded_and_locked_down() -> None:
    objects = rendered("overlays/production")
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {f"ledger-{role}" for role in ROLES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [name.removeprefix("ledger-")]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        context = container["securityContext"]
        assert (context["readOnlyRootFilesystem"], context["allowPrivilegeEscalation"]) == (
            True, False
        )  # fmt: skip
        sources = {next(iter(s)) for s in container["envFrom"]}
        assert sources == {"configMapRef", "secretRef"}
        assert pod["terminationGracePeriodSeconds"] > Settings().shutdown_timeout_s
    consume = deployments["ledger-consume"]["spec"]["replicas"]
    assert 1 <= consume <= USAGE_PARTITIONS, "a consumer beyond the partitions idles"
    assert by_kind(objects, "PodDisruptionBudget")["ledger-serve"]["spec"]["minAvailable"] == 1
    assert by_kind(objects, "HorizontalPodAutoscaler")["ledger-serve"]["spec"]["minReplicas"] >= 2
    jobs = by_kind(objects, "Job")
    assert jobs["ledger-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate"
    ]
    assert jobs["ledger-replay-verify"]["spec"]["suspend"] is True


def test_the_compose_stack_runs_the_roles_on_kafka_and_postgres_in_order() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "kafka", "kafka-topics", "migrate", "prometheus", "grafana"} <= set(
        services
    )
    assert services["postgres"]["image"].startswith("postgres:16")
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft"
    commands = [s.get("command") for s in services.values()]
    assert commands.count(["serve"]) == 2
    for role in ("consume", "project", "react"):
        assert commands.count([role]) == 1
    for name, service in services.items():
        if service.get("command") in (["serve"], ["consume"], ["project"], ["react"]):
            needs = service["depends_on"]
            assert needs["migrate"]["condition"] == "service_completed_successfully", name
            assert needs["postgres"]["condition"] == "service_healthy", name
            assert needs["kafka-topics"]["condition"] == "service_completed_successfully", name
            environment = service["environment"]
            assert environment["LEDGER_ENVIRONMENT"] == "production"
            assert "${" in environment["LEDGER_JWT_SECRET"], "from the env file, not the file"
    topics = " ".join(services["kafka-topics"]["command"])
    assert f"create ledger.usage.v1 {USAGE_PARTITIONS}" in topics
    assert (DEPLOY / ".env.example").exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "deploy/.env"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, "deploy/.env must never be committed"


def test_every_ledger_variable_in_deploy_is_a_setting() -> None:
    settings = {f"LEDGER_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix in ("", ".yaml", ".yml", ".example", ".json"):
            named |= set(re.findall(r"\bLEDGER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named, "deploy/ sets no LEDGER_ variable?"
    assert named <= settings, sorted(named - settings)


def metric_names_in(*texts: str) -> set[str]:
    names = set()
    for text in texts:
        for found in METRIC.findall(text):
            name = found
            for suffix in HISTOGRAM_SUFFIXES:
                name = name.removesuffix(suffix)
            names.add(name)
    return names


def exported_metrics() -> set[str]:
    """The metric families the service's /metrics lists (an ops app, as every role serves)."""
    ledger = InMemoryLedger()

    async def fetch() -> str:
        transport = httpx.ASGITransport(app=create_ops_app(ledger))
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
            return (await client.get("/metrics")).text

    try:
        text = asyncio.run(fetch())
    finally:
        ledger.close()
    return set(re.findall(r"^# TYPE (ledger_[a-z_]+) ", text, re.MULTILINE))


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ledger.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_every_metric_the_dashboard_and_the_alerts_name_is_exported() -> None:
    queries, alerts = dashboard_queries(), alert_expressions()
    assert all(METRIC.search(q) for q in queries), "every panel reads a ledger metric"
    named = metric_names_in(*queries, *alerts)
    exported = exported_metrics()
    assert named <= exported, sorted(named - exported)
    assert {
        "ledger_usage_events_total", "ledger_usage_dead_letters_total",
        "ledger_ingestion_commit_lag_seconds", "ledger_projection_lag_seconds",
        "ledger_http_request_seconds", "ledger_topup_steps_total", "ledger_alerts_raised_total",
    } <= named  # fmt: skip


def test_the_operator_rules_are_the_compose_rules_and_every_alert_has_a_runbook() -> None:
    compose_rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    operator = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert operator["spec"] == compose_rules
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for group in compose_rules["groups"]:
        for rule in group["rules"]:
            assert f"### {rule['alert']}" in runbook, rule["alert"]
