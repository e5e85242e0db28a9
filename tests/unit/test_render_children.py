"""hack/render_children.py: the builders' children of samples/, which hack/kube-score.sh scores."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def render(*files: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "hack" / "render_children.py"), *files]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def test_every_sample_gets_its_secret_and_deployment_and_its_optional_children():
    samples = sorted(str(p) for p in (ROOT / "samples").glob("*.yaml"))
    proc = render(*samples)
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    names = {
        d["metadata"]["name"]
        for p in samples
        for d in yaml.safe_load_all(Path(p).read_text())
        if d and d["kind"] == "PlatformService"
    }
    assert len(names) >= 5
    by_kind = Counter(d["kind"] for d in docs)
    assert by_kind["Deployment"] == len(names)
    assert by_kind["Secret"] == len(names)  # the credentials Secrets, not the samples' own
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == names
    # Optional children come from the builders too: the api sample's Service and Ingress, the data
    # samples' NetworkPolicy.
    assert by_kind["Ingress"] >= 1 and by_kind["Service"] >= 1 and by_kind["NetworkPolicy"] >= 1
    assert all(d["metadata"]["namespace"] == "samples" for d in docs)


def test_a_file_without_platform_services_is_an_error():
    proc = render(str(ROOT / "samples" / "00-secrets.yaml"))
    assert proc.returncode == 1
    assert "no PlatformService" in proc.stderr
