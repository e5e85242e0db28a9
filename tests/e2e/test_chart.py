"""The Helm chart against the real API server: lint, server-side dry-run, install, uninstall."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_kube import eventually, kubectl

ROOT = Path(__file__).resolve().parents[2]
CHART = str(ROOT / "charts")
VALUE_SETS = {
    "defaults": [],
    "dev-backends": [
        "--set", "rabbitmq.enabled=true", "--set", "redis.enabled=true", "--set", "metrics.dashboard.enabled=true",
    ],
    "external-backends": [
        "--set", "rabbitmq.managementUrl=http://rabbitmq.example:15672", "--set", "rabbitmq.host=rabbitmq.example",
        "--set", "redis.host=redis.example",
    ],
    "namespaced": ["--set", "watchNamespaces={team-a,team-b}", "--set", "metrics.serviceMonitor.enabled=false"],
    "tuned": [
        "--set", "logLevel=debug", "--set", "extraEnv[0].name=PLATFORM_RESYNC_SECONDS",
        "--set-string", "extraEnv[0].value=15", "--set", "extraArgs={-X,faulthandler}",
        "--set", "topologySpreadConstraints[0].maxSkew=1",
        "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set", "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        "--set", "podSecurityContext.runAsUser=20000", "--set", "global.imageRegistry=registry.example",
    ],
}  # fmt: skip
# Where pods really run (kind), the values that point the chart at the images loaded there: the
# operator's local tag, and offline the dev servers' images (hack/kind.sh sets this).
KIND_HELM_ARGS = shlex.split(os.environ.get("PLATFORM_E2E_HELM_ARGS", ""))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stderr}")
    return proc


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint(values: list[str]):
    out = helm("lint", CHART, "--strict", *values).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_the_redis_admin_password_reaches_the_operator_apart_from_the_url():
    """A URL would need `p@ss/w#rd%` percent-encoded: the chart passes the Secret's key as it is."""
    import yaml

    rendered = helm("template", "pw", CHART, "--set", "redis.host=redis.example", "--set",
                    "redis.existingSecret=redis-admin").stdout  # fmt: skip
    deployment = next(
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Deployment" and "operator" in d["metadata"]["name"]
    )
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLATFORM_REDIS_URL"]["value"] == "redis://redis.example:6379/0"
    assert env["PLATFORM_REDIS_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-admin",
        "key": "password",
    }
    assert not any("$(" in str(e.get("value", "")) for e in env.values())


def test_values_schema_refuses_unknown_keys():
    proc = helm("lint", CHART, "--set", "replicas=3", check=False)
    assert proc.returncode != 0
    assert "additional properties 'replicas' not allowed" in proc.stdout + proc.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_chart_is_accepted_by_the_api_server(cluster: str, values: list[str]):
    ns = f"chart-dry-{uuid.uuid4().hex[:5]}"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "charts" / "crds"))
    kubectl("create", "namespace", ns)
    for extra in ("team-a", "team-b"):
        kubectl("create", "namespace", extra, check=False)
    try:
        rendered = helm("template", "dry", CHART, "-n", ns, *values).stdout
        proc = kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "deployment.apps/dry-platform-operator created (server dry run)" in proc.stdout
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")


def test_install_runs_ready_pods_and_uninstall_leaves_only_the_crds(cluster: str):
    release, ns = f"rel{uuid.uuid4().hex[:5]}", f"chart-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    helm("install", release, CHART, "-n", ns, "--set", "redis.enabled=true", "--set", "rabbitmq.enabled=true",
         *KIND_HELM_ARGS, "--wait", "--timeout", "3m")  # fmt: skip
    selector = f"app.kubernetes.io/instance={release}"
    ready = "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}"
    pods = kubectl("get", "pods", "-n", ns, "-l", selector, "-o", ready).stdout
    assert pods.split() == ["True", "True"]  # two operator replicas, admitted under the restricted profile
    backends = kubectl("get", "deploy", "-n", ns, "-o", "jsonpath={.items[*].status.readyReplicas}").stdout.split()
    assert sorted(backends) == ["1", "1", "2"]  # Redis, RabbitMQ and the operator
    assert kubectl("get", "clusterkopfpeering", f"{release}-platform-operator", check=False).returncode == 0

    helm("uninstall", release, "-n", ns, "--wait")
    kinds = "deploy,rs,pod,svc,secret,sa,role,rolebinding,pdb,cm"
    cluster_kinds = "clusterrole,clusterrolebinding,clusterkopfpeering"
    eventually(
        lambda: (
            not kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name").stdout.strip()
            and not kubectl("get", "pods", "-n", ns, "-o", "name").stdout.strip()
        ),
        timeout=60,
        what="every namespaced object of the release to be gone",
    )
    assert kubectl("get", cluster_kinds, "-l", selector, "-o", "name").stdout.strip() == ""
    # What the CRD policy keeps: Helm's crds/ folder is never deleted by uninstall.
    assert kubectl("get", "crd", "platformservices.platform.dev", check=False).returncode == 0
    kubectl("delete", "namespace", ns, "--wait=false")
