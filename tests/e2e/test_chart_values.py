"""The chart's values rendered by helm (no cluster): security, probes, spread, environment, the
PrometheusRule, kubeVersion and use as a subchart. test_chart.py dry-runs the same values on the API server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_operator import observability

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stderr}")
    return proc


def render(*values: str, chart: Path = CHART) -> list[dict[str, Any]]:
    out = helm("template", "rel", str(chart), "-n", "ops", *values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str = "rel-platform-operator") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, [(d["kind"], d["metadata"]["name"]) for d in docs]
    return found[0]


def operator_pod(*values: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(render(*values), "Deployment")["spec"]["template"]["spec"]
    return spec


def test_defaults_hold_the_restricted_profile_and_a_read_only_root():
    pod = operator_pod()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = pod["containers"][0]["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["runAsNonRoot"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_security_contexts_are_values():
    pod = operator_pod("--set", "podSecurityContext.runAsUser=20000", "--set", "securityContext.runAsUser=20000")
    assert pod["securityContext"]["runAsUser"] == 20000
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 20000


def test_liveness_and_readiness_probes_differ():
    container = operator_pod()["containers"][0]
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live == {"path": "/healthz", "port": "liveness"}  # kopf's own health
    assert ready == {"path": "/metrics", "port": "metrics"}  # the process serves
    ports = {p["name"] for p in container["ports"]}
    assert {"liveness", "metrics"} <= ports


def env_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = pod["containers"][0]["env"]
    return env


def test_log_level_reaches_the_operator_upper_cased():
    env = {e["name"]: e.get("value") for e in env_of(operator_pod("--set", "logLevel=debug"))}
    assert env["PLATFORM_LOG_LEVEL"] == "DEBUG"
    assert {e["name"]: e.get("value") for e in env_of(operator_pod())}["PLATFORM_LOG_LEVEL"] == "INFO"


def test_log_level_outside_the_list_is_refused_naming_it():
    proc = helm("lint", str(CHART), "--set", "logLevel=chatty", check=False)
    assert proc.returncode != 0
    assert "logLevel" in proc.stdout + proc.stderr


def test_extra_env_is_added_and_replaces_the_charts_own_variable():
    env = env_of(
        operator_pod(
            "--set", "extraEnv[0].name=PLATFORM_RESYNC_SECONDS", "--set-string", "extraEnv[0].value=15",
            "--set", "extraEnv[1].name=PLATFORM_PEERING_LIFETIME", "--set-string", "extraEnv[1].value=30",
        )
    )  # fmt: skip
    names = [e["name"] for e in env]
    assert names.count("PLATFORM_RESYNC_SECONDS") == 1
    assert {e["name"]: e.get("value") for e in env}["PLATFORM_RESYNC_SECONDS"] == "15"
    assert "PLATFORM_PEERING_LIFETIME" in names
    assert "PLATFORM_NAMESPACES" in names  # the rest of the chart's variables stay


def test_extra_args_go_to_the_interpreter_before_the_module():
    container = operator_pod("--set", "extraArgs={-X,faulthandler}")["containers"][0]
    assert container["command"] == ["python"]
    assert container["args"] == ["-X", "faulthandler", "-m", "platform_operator"]
    assert "command" not in operator_pod()["containers"][0]  # the image's entrypoint by default


def test_replicas_spread_across_nodes_with_the_pod_selector_filled_in():
    pod = operator_pod()
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "platform-operator", "app.kubernetes.io/instance": "rel"}
    }
    zones = operator_pod(
        "--set", "topologySpreadConstraints[0].maxSkew=2",
        "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set", "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        "--set", "topologySpreadConstraints[0].labelSelector.matchLabels.team=a",
    )["topologySpreadConstraints"]  # fmt: skip
    assert zones == [
        {
            "maxSkew": 2,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"team": "a"}},  # a given selector is kept as it is
        }
    ]


def test_network_policy_admits_only_health_and_metrics():
    policy = one(render(), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == ["liveness", "metrics"]
    assert policy["spec"]["egress"] == [{}]
    narrowed = one(
        render("--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring"), "NetworkPolicy"
    )
    assert narrowed["spec"]["ingress"][1]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert not [d for d in render("--set", "networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"]


def exported_names() -> set[str]:
    names = {m.name for m in observability.REGISTRY.collect()}
    return names | {n + s for n in names for s in ("_total", "_bucket", "_sum", "_count")}


def test_prometheus_rule_is_off_by_default():
    assert not [d for d in render() if d["kind"] == "PrometheusRule"]


def test_prometheus_rule_holds_the_operations_alerts_over_real_metrics():
    docs = render(
        "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kps",
        "--set", "metrics.prometheusRule.alertLabels.team=platform",
    )  # fmt: skip
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    rules = rule["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [
        "PlatformServicesNotReady",
        "PlatformOperatorReconcileErrors",
        "PlatformOperatorBackendErrors",
        "PlatformOperatorSlowReconciles",
        "PlatformOperatorDriftStorm",
        "PlatformOperatorAbsent",
    ]
    # Every alert of docs/operations.md's table is here (its rows name the metric each reads).
    table = (ROOT / "docs" / "operations.md").read_text().split("## Alerts worth setting")[1].split("\n## ")[0]
    documented = set(re.findall(r"\bplatform_[a-z_]+", table))
    used = {m for r in rules for m in re.findall(r"\bplatform_[a-z_]+", r["expr"])}
    assert used == documented
    assert used <= exported_names(), used - exported_names()
    for r in rules:
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["labels"]["team"] == "platform"
        assert re.fullmatch(r"[0-9]+m", r["for"])
        assert r["annotations"]["summary"]
    # The absent-operator alert reads the up series of the metrics Service's scrape job.
    service = one(docs, "Service", "rel-platform-operator-metrics")
    absent = next(r for r in rules if r["alert"] == "PlatformOperatorAbsent")
    assert f'job="{service["metadata"]["name"]}"' in absent["expr"]
    assert 'namespace="ops"' in absent["expr"]


def test_kube_version_refuses_a_cluster_too_old_for_the_crds_rules():
    proc = helm("template", "rel", str(CHART), "--kube-version", "1.28.0", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr
    assert render("--kube-version", "1.29.0")


def test_works_as_a_subchart_with_global_values(tmp_path: Path):
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "platform-operator")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        "dependencies:\n  - name: platform-operator\n    version: 0.1.0\n"
    )
    (parent / "values.yaml").write_text(
        "global:\n  imageRegistry: registry.example\nplatform-operator:\n  logLevel: warning\n"
    )
    assert "1 chart(s) linted, 0 chart(s) failed" in helm("lint", "--strict", str(parent)).stdout
    pod = one(render(chart=parent), "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in env_of(pod)}
    assert env["PLATFORM_LOG_LEVEL"] == "WARNING"


@pytest.mark.parametrize(
    "bad",
    [
        "extraEnv[0].value=x",  # no name
        "topologySpreadConstraints[0].maxSkew=0",
        "networkPolicy.egressRules=1",
        "metrics.prometheusRule.severity=page",
    ],
)
def test_schema_refuses_malformed_new_values(bad: str):
    assert helm("lint", str(CHART), "--set", bad, check=False).returncode != 0
