"""Generated PlatformServices: the API server accepts or refuses each (naming the field), and the
operator brings every accepted one to a verdict (Ready, or a condition with a reason), never a
crash or a reconcile that stops answering."""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from e2e_kube import apply, condition, eventually, get, kubectl, psvc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

names = itertools.count()

# Mostly valid values, with invalid ones mixed in: about a third of the specs pass the API server.
hosts = st.one_of(
    st.sampled_from(["orders.example.com", "a.b", "x.example.org"]),
    st.sampled_from(["orders.example.com", "api.example.com"]),
    st.text("abcXY-_.!0", min_size=1, max_size=12),
)
ingress = st.fixed_dictionaries(
    {"host": hosts},
    optional={
        "path": st.sampled_from(["/", "/v1", "/v2", "nope"]),
        "rateLimit": st.fixed_dictionaries({"rps": st.integers(-1, 50)}, optional={"burst": st.integers(0, 100)}),
        "maxBodySize": st.sampled_from(["1m", "512k", "big"]),
    },
)
consume = st.fixed_dictionaries(
    {"queue": st.sampled_from(["q1", "q2", "bad queue"]), "exchange": st.sampled_from(["ev", "ev2"])},
    optional={
        "maxRetries": st.sampled_from([0, 1, 3, -1]),
        "retryDelaySeconds": st.sampled_from([1, 2, 0]),
        "deadLetter": st.booleans(),
        "maxLength": st.sampled_from([10, 100, 0]),
    },
)
specs = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["data", "api", "api", "bot", "worker", "worker", "cron"]),
        "image": st.sampled_from(["example/x:1", "example/x:1", "example/x:1", ""]),
    },
    optional={
        "replicas": st.sampled_from([0, 1, 2, 3, -1]),
        "port": st.sampled_from([8000, 8080, 9000, 0, 70000]),
        "ingress": ingress,
        "database": st.fixed_dictionaries(
            {"engine": st.sampled_from(["postgres", "mongo", "mysql"]), "secretRef": st.just({"name": "db"})}
        ),
        "bot": st.fixed_dictionaries(
            {"tokenSecretRef": st.just({"name": "t"})}, optional={"mode": st.sampled_from(["polling", "webhook"])}
        ),
        "messaging": st.fixed_dictionaries(
            {}, optional={"consumes": st.lists(consume, max_size=2, unique_by=lambda c: c["queue"])}
        ),
        "redis": st.fixed_dictionaries({}, optional={"keyPrefix": st.sampled_from(["ok:prefix", "bad prefix"])}),
        "dependsOn": st.lists(st.sampled_from(["users-data", "users-data", "Bad_Name"]), max_size=1),
    },
)


def verdict(name: str, ns: str) -> dict[str, Any] | None:
    obj = get("psvc", name, ns)
    if not obj or obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    ready = condition(obj, "Ready")
    return obj if ready.get("status") in ("True", "False", "Unknown") and ready.get("reason") else None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs)
def test_every_generated_spec_is_refused_by_field_or_reaches_a_verdict(ns: str, spec: dict[str, Any]):
    name = f"gen{next(names)}"
    proc = apply(psvc(name, **spec), ns, check=False)
    event("refused" if proc.returncode else "accepted")
    if proc.returncode != 0:
        assert "spec" in proc.stderr, proc.stderr  # the refusal names the field
        assert get("psvc", name, ns) is None
        return
    obj = eventually(lambda: verdict(name, ns), timeout=45, what=f"a verdict for {yaml.safe_dump(spec)}")
    for cond in obj["status"]["conditions"]:
        assert cond["reason"] and cond["message"], cond
    kubectl("delete", "psvc", name, "-n", ns, "--wait=false")
