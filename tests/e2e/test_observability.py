"""What an SRE sees: Prometheus metrics and JSON log lines that lead to traces."""

from __future__ import annotations

import json
import urllib.request

import pytest
from e2e_kube import Operator, OperatorProcess, apply, eventually, kubectl, psvc, wait_ready

_ports: list[int] = []  # the metrics port of the local operator under test


def metrics() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{_ports[0]}/metrics", timeout=5) as resp:
        return resp.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def local_operator(operator: Operator) -> OperatorProcess:
    if not isinstance(operator, OperatorProcess):
        pytest.skip("reads the metrics port and log of a local operator process")
    _ports[:] = [operator.metrics_port]
    return operator


def test_metrics_count_reconciles_calls_readiness_and_repairs(ns: str, local_operator: OperatorProcess):
    before = metrics()
    apply(psvc("orders", type="api", image="example/orders:1", messaging={"publishes": [{"name": f"{ns}.ev"}]}), ns)
    wait_ready("orders", ns)
    kubectl("set", "image", "deployment/orders", "app=evil:1", "-n", ns)
    eventually(
        lambda: (
            sample(metrics(), "platform_drift_repairs_total", kind="Deployment")
            > sample(before, "platform_drift_repairs_total", kind="Deployment")
        ),
        what="a drift repair to be counted",
    )
    after = metrics()
    assert sample(after, "platform_reconciles_total", result="ok", type="api") > sample(
        before, "platform_reconciles_total", result="ok", type="api"
    )
    assert sample(after, "platform_reconcile_duration_seconds_count", type="api") > 0
    for system in ("apiserver", "rabbitmq", "redis"):
        assert sample(after, "platform_outside_call_duration_seconds_count", system=system) > 0, system
    eventually(
        lambda: sample(metrics(), "platform_managed_services", type="api", ready="True") >= 1,
        what="the service counted as ready once the repaired rollout is done",
    )


def test_log_lines_are_json_with_object_reconcile_and_trace(ns: str, local_operator: OperatorProcess):
    mark = local_operator.log_mark()
    apply(psvc("orders", type="worker", image="example/w:1"), ns)
    wait_ready("orders", ns)
    lines = [line for line in local_operator.log_since(mark).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    ours = [r for r in records if r.get("namespace") == ns and "Reconciled" in r["message"]]
    assert ours, records[-5:]
    for r in ours:
        assert r["object"] == "orders"
        assert len(r["reconcile_id"]) == 12
        assert len(r["trace_id"]) == 32 and int(r["trace_id"], 16) != 0
        assert {"time", "level", "logger"} <= set(r)
