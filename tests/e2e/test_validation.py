"""Invalid PlatformServices are refused by the API server itself, with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_kube import apply, condition, eventually, get, kubectl, psvc, wait_ready

API = {"type": "api", "image": "example/orders:1"}

# (id, spec or raw YAML, a fragment the refusal must contain)
INVALID: list[tuple[str, dict[str, Any] | str, str]] = [
    ("unknown-type", {"type": "cron", "image": "x"}, 'spec.type: Unsupported value: "cron"'),
    ("no-image", {"type": "api"}, "spec.image: Required value"),
    ("no-type", {"image": "x"}, "spec.type: Required value"),
    (
        "database-on-api",
        {**API, "database": {"engine": "postgres", "secretRef": {"name": "db"}}},
        "spec.database: Forbidden: database is allowed only when type is data",
    ),
    (
        "ingress-on-worker",
        {"type": "worker", "image": "x", "ingress": {"host": "w.example.com"}},
        "spec.ingress: Forbidden",
    ),
    (
        "ingress-on-polling-bot",
        {"type": "bot", "image": "x", "bot": {"tokenSecretRef": {"name": "t"}}, "ingress": {"host": "b.example.com"}},
        "spec.ingress: Forbidden",
    ),
    ("bot-without-bot", {"type": "bot", "image": "x"}, "spec.bot: Required value"),
    ("bot-block-on-api", {**API, "bot": {"tokenSecretRef": {"name": "t"}}}, "spec.bot: Forbidden"),
    ("negative-replicas", {**API, "replicas": -1}, "spec.replicas: Invalid value: -1"),
    ("bad-host", {**API, "ingress": {"host": "Not_A_Host!"}}, "spec.ingress.host: Invalid value"),
    ("bad-path", {**API, "ingress": {"host": "a.example.com", "path": "no-slash"}}, "spec.ingress.path: Invalid value"),
    ("port-out-of-range", {**API, "port": 70000}, "spec.port: Invalid value: 70000"),
    ("unknown-field", {**API, "replica": 2}, ".spec.replica: field not declared in schema"),
    (
        "database-url-on-worker",
        {"type": "worker", "image": "x", "env": [{"name": "DATABASE_URL", "value": "postgres://u@db/x"}]},
        "spec.env: Forbidden: DATABASE_URL may be set only on data services",
    ),
    (
        "bad-engine",
        {"type": "data", "image": "x", "database": {"engine": "mysql", "secretRef": {"name": "d"}}},
        'spec.database.engine: Unsupported value: "mysql"',
    ),
    (
        "exchange-namespace-amq",
        {
            "type": "worker",
            "image": "x",
            "messaging": {"consumes": [{"queue": "q", "exchange": "e", "exchangeNamespace": "amq"}]},
        },
        "spec.messaging.consumes[0].exchangeNamespace: Invalid value",
    ),
    ("depends-on-itself", {**API, "dependsOn": ["bad-self"]}, "spec.dependsOn: Invalid value"),
    (
        "burst-below-rps",
        {**API, "ingress": {"host": "a.example.com", "rateLimit": {"rps": 10, "burst": 5}}},
        "spec.ingress.rateLimit.burst: Invalid value",
    ),
]


@pytest.mark.parametrize(("case", "spec", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resource_is_refused_naming_the_field(ns: str, case: str, spec: dict[str, Any], fragment: str):
    proc = apply(psvc("bad-self", **spec), ns, check=False)
    assert proc.returncode != 0, f"{case} was accepted"
    assert fragment in proc.stderr, proc.stderr
    assert get("psvc", "bad-self", ns) is None


def test_type_is_immutable(ns: str):
    apply(psvc("svc", type="worker", image="x"), ns)
    proc = apply(psvc("svc", type="api", image="x"), ns, check=False)
    assert proc.returncode != 0
    assert "spec.type: Invalid value" in proc.stderr and "type is immutable" in proc.stderr


def test_defaults_are_applied_by_the_api_server(ns: str):
    apply(psvc("svc", type="api", image="x", ingress={"host": "d.example.com"}), ns)
    spec = get("psvc", "svc", ns)["spec"]
    assert spec["replicas"] == 1
    assert spec["port"] == 8000
    assert spec["deletionPolicy"] == "Retain"
    assert spec["ingress"]["path"] == "/"


def test_same_host_and_path_later_one_is_refused_first_untouched(ns: str):
    ing = {"host": "shared.example.com", "path": "/"}
    apply(psvc("first", type="api", image="example/a:1", ingress=ing), ns)
    wait_ready("first", ns)
    before = get("ingress", "first", ns)

    apply(psvc("second", type="api", image="example/b:1", ingress=ing), ns)
    second = eventually(
        lambda: (o := get("psvc", "second", ns)) and condition(o, "IngressReady").get("status") == "False" and o,
        what="second to report the conflict",
    )
    cond = condition(second, "IngressReady")
    assert cond["reason"] == "HostPathConflict"
    assert f"{ns}/first" in cond["message"]
    assert condition(second, "Ready")["status"] == "False"
    assert get("ingress", "second", ns) is None
    after = get("ingress", "first", ns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert condition(get("psvc", "first", ns), "Ready")["status"] == "True"

    # Once the first lets go of the path, the second gets it.
    kubectl("delete", "psvc", "first", "-n", ns)
    eventually(lambda: get("ingress", "second", ns), timeout=30, what="second to get the ingress")
    wait_ready("second", ns)


def test_kubectl_explain_teaches_the_fields(cluster: str):
    out = kubectl("explain", "psvc.spec.ingress").stdout
    assert "Exposes the service through the nginx ingress controller" in out
    for field in ("host", "path", "tls", "rateLimit", "cors", "maxBodySize"):
        assert field in out
    assert "The DNS name clients use" in kubectl("explain", "psvc.spec.ingress.host").stdout


def test_printer_columns(ns: str):
    apply(psvc("orders", type="api", image="example/orders:1", ingress={"host": "cols.example.com"}), ns)
    wait_ready("orders", ns)
    header, row = kubectl("get", "psvc", "-n", ns).stdout.splitlines()[:2]
    assert header.split() == ["NAME", "TYPE", "READY", "REPLICAS", "URL", "AGE"]
    assert row.split()[:5] == ["orders", "api", "True", "1/1", "http://cols.example.com/"]
    wide = kubectl("get", "platform", "-n", ns, "-o", "wide").stdout.splitlines()[0].split()
    assert wide[-1] == "REASON"
