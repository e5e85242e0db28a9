"""The e2e suite: the operator against the cluster in KUBECONFIG.

`make test-e2e` starts the local control plane and sets KUBECONFIG; the same suite runs against
any cluster. Each test gets a fresh namespace enforcing the restricted Pod Security Standard, and
on failure the operator's log and the namespace's events are printed.

Where the operator runs (PLATFORM_E2E_OPERATOR):
- `chart` (default): the chart is installed (its pods run under kwok, in name only) and the
  operator runs here as a process under the chart's ServiceAccount, with a token from the
  TokenRequest API: a verb missing from the chart's RBAC fails the tests.
- `admin`: the operator runs here with the admin kubeconfig.
- `in-cluster`: the chart's own pods are the operator (kind, where pods really run).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from e2e_kube import InClusterOperator, Operator, OperatorProcess, kubectl, remember_passwords

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> str:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig or not Path(kubeconfig).exists():
        pytest.fail("the e2e suite needs a cluster: run `make test-e2e` (or set KUBECONFIG)", pytrace=False)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    # Right after the apply, `kubectl wait` once exited 1 at once (its watch began as the CRD turned
    # Established): a failed wait is tried again before it counts.
    for attempt in range(3):
        if kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/platformservices.platform.dev",
                   check=attempt == 2).returncode == 0:  # fmt: skip
            break
        time.sleep(2)
    return kubeconfig


RELEASE, RELEASE_NAMESPACE = "platform", "platform-system"
SERVICE_ACCOUNT = "platform-operator"  # helm install platform charts/ names everything so


def install_chart(*extra: str) -> None:
    subprocess.run(
        ["helm", "upgrade", "--install", RELEASE, str(ROOT / "charts"), "-n", RELEASE_NAMESPACE,
         "--create-namespace", "--wait", "--timeout", "3m", *extra],
        check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def service_account_kubeconfig(path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest API)."""
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", RELEASE_NAMESPACE, "--duration=4h").stdout.strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": SERVICE_ACCOUNT}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def operator(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    mode = os.environ.get("PLATFORM_E2E_OPERATOR", "chart")
    if mode == "in-cluster":
        yield InClusterOperator(RELEASE_NAMESPACE, f"deploy/{SERVICE_ACCOUNT}")
        return
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = None
    if mode == "chart":
        install_chart()
        kubeconfig = service_account_kubeconfig(workdir / "kubeconfig")
    op = OperatorProcess(workdir / "operator.log", kubeconfig=kubeconfig)
    op.start()
    yield op
    op.stop()


_current_operator: list[Operator] = []
USER_SECRETS = yaml.safe_dump_all(
    [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {key: value}}
        for name, key, value in (
            ("db", "dsn", "postgresql://e2e:e2e@db.example:5432/e2e"),
            ("d", "dsn", "postgresql://e2e:e2e@db.example:5432/e2e"),
            ("bot-token", "token", "000000:e2e-token"),
            ("t", "token", "000000:e2e-token"),
        )
    ]
)


@pytest.fixture
def ns(operator: Operator, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"e2e-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    # The users' Secrets the suite's specs refer to (a database DSN, a bot token): where pods really
    # run (kind) a container whose referenced Secret is missing never starts.
    kubectl("apply", "-n", name, "-f", "-", stdin=USER_SECRETS)
    _current_operator[:] = [operator]
    yield name
    remember_passwords(name)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed and "ns" in getattr(item, "funcargs", {}):
        namespace = item.funcargs["ns"]
        events = kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
        objects = kubectl("get", "psvc,deploy,svc,ing,netpol,secret", "-n", namespace, "-o", "wide", check=False)
        log = _current_operator[0].log_tail() if _current_operator else "(no operator)"
        report.sections.append(("namespace events", events))
        report.sections.append(("namespace objects", objects.stdout + objects.stderr))
        report.sections.append(("operator log (tail)", log))
    return report


@pytest.fixture(scope="session")
def prometheus_operator_crds() -> Path:
    """The folder of the Prometheus Operator's CRDs, fetched into the cache once (Go module proxy)."""
    proc = subprocess.run([str(ROOT / "hack" / "prometheus-operator-crds.sh")], capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"hack/prometheus-operator-crds.sh failed: {proc.stderr}", pytrace=False)
    return Path(proc.stdout.strip())


@pytest.fixture(scope="session")
def audit_log(cluster: str) -> str | None:
    """The API server's audit log, where the cluster is local (make test-e2e sets PLATFORM_AUDIT_LOG)."""
    path = os.environ.get("PLATFORM_AUDIT_LOG")
    return path if path and Path(path).exists() else None


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} not set: run through `make test-e2e`", pytrace=False)
    return value


@pytest.fixture(scope="module")
def mq() -> Iterator[httpx.Client]:
    auth = (env("PLATFORM_RABBITMQ_ADMIN_USER"), env("PLATFORM_RABBITMQ_ADMIN_PASSWORD"))
    with httpx.Client(base_url=env("PLATFORM_RABBITMQ_MANAGEMENT_URL") + "/api", auth=auth, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def rds() -> Iterator[redis.Redis]:
    # As the chart runs the operator (kind), the admin password is apart from the URL.
    password = os.environ.get("PLATFORM_REDIS_ADMIN_PASSWORD") or None
    r = redis.Redis.from_url(env("PLATFORM_REDIS_URL"), password=password, decode_responses=True)
    yield r
    r.close()
