"""The Kubernetes and KServe manifests: core resources valid against Kubernetes' own schemas
(kubernetes-validate, strict), and every flag, port and probe path they use one that
`capsdeploy serve` really has."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CORE = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"}


def documents():
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.relative_to(DEPLOY), doc


def by_kind(kind: str) -> list[dict]:
    return [d for _, d in documents() if d.get("kind") == kind]


def serve_command() -> click.Command:
    from capsdeploy.cli.serve_cmd import serve_cmd

    return serve_cmd


def parse_serve_args(args: list[str]) -> dict:
    """The manifest's args through the real `capsdeploy serve` option parser: an unknown flag or
    a bad value raises here as it would in the pod."""
    cmd = serve_command()
    ctx = cmd.make_context("serve", list(args), resilient_parsing=False)
    return ctx.params


def containers():
    for doc in [*by_kind("Deployment"), *by_kind("InferenceService")]:
        spec = doc["spec"]
        pod = spec["template"]["spec"] if doc["kind"] == "Deployment" else spec["predictor"]
        for c in pod.get("containers", []):
            yield doc, pod, c


@pytest.mark.parametrize(("path", "doc"), [(p, d) for p, d in documents() if d["kind"] in CORE], ids=str)
def test_core_resources_are_valid_kubernetes(path, doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_validation_would_catch_a_typo():
    bad = {**by_kind("Service")[0]}
    bad["spec"] = {**bad["spec"], "selectr": {"app": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_every_kind_is_known():
    kinds = {d["kind"] for _, d in documents()}
    assert kinds <= CORE | {"Kustomization", "InferenceService"}, kinds
    assert kinds >= CORE


def test_kustomization_lists_every_manifest():
    kust = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == on_disk


def test_container_args_are_serve_flags_and_ports_match():
    seen = 0
    for doc, _, c in containers():
        params = parse_serve_args(c["args"])
        assert params["repository"] in ("/models", "/mnt/models")
        declared = {p["containerPort"] for p in c["ports"]}
        assert params["port"] in declared, (doc["metadata"]["name"], params["port"], declared)
        for key in ("grpc_port", "metrics_port"):
            if key in params and params[key]:
                assert params[key] in declared or doc["kind"] == "InferenceService"
        seen += 1
    assert seen == 2


def test_probe_paths_are_routes_of_the_server():
    from capsdeploy.serve.app import ServerState, create_app

    app = create_app(ServerState({}))
    routes = {getattr(r, "path", None) for r in app.app.routes}
    probes = 0
    for _, _, c in containers():
        for key in ("readinessProbe", "livenessProbe", "startupProbe"):
            if key in c:
                assert c[key]["httpGet"]["path"] in routes, c[key]
                probes += 1
    assert probes >= 4


def test_grace_period_covers_prestop_drain_and_grace():
    (deploy,) = by_kind("Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    params = parse_serve_args(c["args"])
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + params["drain_delay_s"] + params["grace_s"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_security_context_is_non_root_and_read_only():
    (deploy,) = by_kind("Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"] == "/models")


def test_hpa_scales_on_a_metric_the_server_exports():
    from prometheus_client import generate_latest

    from capsdeploy.serve.metrics import ServerMetrics

    (hpa,) = by_kind("HorizontalPodAutoscaler")
    pods_metric = next(m for m in hpa["spec"]["metrics"] if m["type"] == "Pods")["pods"]["metric"]["name"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    exported = generate_latest(ServerMetrics({}).registry).decode()
    assert f"# TYPE {pods_metric} " in exported
