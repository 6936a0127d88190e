"""The Kubernetes manifests: valid for 1.34, clean under checkov, and holding the promises of docs/deploy.md."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.property.settings import Settings as PropertySettings
from tests.deploy.files import COMPONENTS, DEPLOY, K8S, NAMESPACE, ROOT, manifests, of_kind, release_version, tool


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [str(tool("kubernetes-validate")), "-k", "1.34.0", "--strict", "--quiet", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_manifests_validate_against_kubernetes_1_34() -> None:
    result = kubernetes_validate(*sorted(K8S.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_misspelt_field(tmp_path: Path) -> None:
    deployment = of_kind("Deployment")["timebank"]
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = kubernetes_validate(broken)
    assert result.returncode != 0 and "replica" in result.stdout + result.stderr


def test_checkov_passes_the_manifests_and_the_dockerfile_with_only_the_written_exceptions() -> None:
    config = DEPLOY / "checkov.yaml"
    command = [str(tool("checkov")), "--config-file", str(config), "-d", str(DEPLOY), "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summaries = {report["check_type"]: report["summary"] for report in reports}
    failed = [
        f"{check['check_id']} {check['resource']} {check['file_path']}"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, failed
    assert summaries["kubernetes"]["resource_count"] >= len(manifests()), "checkov read every manifest"
    assert summaries["kubernetes"]["passed"] > 300 and summaries["dockerfile"]["passed"] > 30
    # Every exception says why, on the line above it.
    lines = config.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if re.fullmatch(r"\s*- CKV\w*", line)]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#") and len(lines[i - 1]) > 20, f"no reason for {lines[i].strip()}"


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def pod_specs() -> dict[str, dict[str, Any]]:
    pods = {name: d["spec"]["template"]["spec"] for name, d in of_kind("Deployment").items()}
    pods.update({name: j["spec"]["template"]["spec"] for name, j in of_kind("Job").items()})
    return pods


def test_every_pod_runs_non_root_read_only_without_capabilities_or_an_api_token() -> None:
    for name, pod in pod_specs().items():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts_tmp = {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, (name, c["name"])
            assert set(c["resources"]["requests"]) == {"cpu", "memory"} and "memory" in c["resources"]["limits"]
            assert mounts_tmp and {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], (name, c["name"])


def test_one_release_version_everywhere_and_never_latest() -> None:
    version = release_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for name, pod in pod_specs().items():
        for c in containers(pod):
            assert c["image"].endswith(f":{version}"), (name, c["image"])
    for doc in manifests():
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE or doc["kind"] == "Namespace"
        labels = doc["metadata"].get("labels", {})
        if "app.kubernetes.io/version" in labels:
            assert labels["app.kubernetes.io/version"] == version, doc["metadata"]["name"]
    (job_name,) = of_kind("Job")
    assert job_name == "migrate-" + version.replace(".", "-"), "each release applies its own migration Job"


def test_each_component_waits_for_its_migrations_is_probed_and_has_a_budget_and_an_autoscaler() -> None:
    deployments, pdbs, hpas = of_kind("Deployment"), of_kind("PodDisruptionBudget"), of_kind("HorizontalPodAutoscaler")
    assert set(deployments) == set(COMPONENTS)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (gate,) = pod["initContainers"]
        assert gate["command"][:4] == ["python", "-m", "deploy.migrations_ready", name]
        (main,) = pod["containers"]
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"secretRef": {"name": "community-secrets"}} in main["envFrom"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == selector and pdbs[name]["spec"]["minAvailable"] == 1
        assert hpas[name]["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpas[name]["spec"]["minReplicas"] < hpas[name]["spec"]["maxReplicas"]
    assert not of_kind("Secret"), "Secrets are created by the operator and only referenced here"


def test_only_the_gateway_is_reachable_and_only_through_tls_with_room_for_the_largest_upload() -> None:
    (ingress,) = of_kind("Ingress").values()
    assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"]
    backends = {p["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert backends == {"gateway"}
    body_limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_limit.endswith("m")
    config = of_kind("ConfigMap")["community-config"]["data"]
    largest_upload = PropertySettings().photo_max_bytes
    assert largest_upload < int(config["GATEWAY_MAX_BODY_BYTES"]) <= int(body_limit[:-1]) * 1024 * 1024
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in of_kind("Service").values())

    policies = of_kind("NetworkPolicy")
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    admitted: dict[str, list[dict[str, Any]]] = {}
    for policy in policies.values():
        spec = policy["spec"]
        targets = spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for expression in spec["podSelector"].get("matchExpressions", []):
            targets = expression["values"]
        for target in [targets] if isinstance(targets, str) else targets or []:
            for rule in spec.get("ingress", []):
                admitted.setdefault(target, []).extend(rule["from"])
    assert set(admitted) == set(COMPONENTS)
    gateway_only = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    for service in set(COMPONENTS) - {"gateway"}:
        assert admitted[service] == gateway_only, service
    assert any("namespaceSelector" in peer for peer in admitted["gateway"]), "the ingress controller reaches the gateway"
