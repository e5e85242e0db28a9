"""The Grafana dashboard shipped with the chart queries metrics the operator really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from platform_operator import observability

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "dashboards" / "platform-operator.json"


def exported_names() -> set[str]:
    names = set()
    for metric in observability.REGISTRY.collect():
        for s in metric.samples:
            names.add(s.name)
        names.add(metric.name)
    # Counters export <name>_total; histograms _bucket/_sum/_count, even before a first sample.
    names |= {n + suffix for n in list(names) for suffix in ("_total", "_bucket", "_sum", "_count")}
    return names


def test_every_panel_queries_existing_metrics():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 7
    used = {m for e in exprs for m in re.findall(r"\bplatform_[a-z_]+", e)}
    assert used, exprs
    missing = used - exported_names()
    assert missing == set()


def test_panels_cover_reconciles_durations_calls_readiness_and_repairs():
    text = DASHBOARD.read_text()
    for metric in (
        "platform_reconciles_total",
        "platform_reconcile_duration_seconds_bucket",
        "platform_outside_call_duration_seconds_bucket",
        "platform_outside_call_errors_total",
        "platform_managed_services",
        "platform_drift_repairs_total",
    ):
        assert metric in text, metric
