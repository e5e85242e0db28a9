"""A thin kubectl wrapper for the e2e suite: tests act as a user would, through kubectl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

T = TypeVar("T")
RESYNC_SECONDS = 3  # hack/kind.sh installs the chart with the same (E2E_RESYNC_SECONDS)
SWEEP_SECONDS = 5  # and this as userSweepSeconds (E2E_SWEEP_SECONDS)
OPERATOR_PODS = "app.kubernetes.io/name=platform-operator"  # the chart's operator pods (kind)
# Every password the operator generated during the run (read from the Secrets before each test's
# namespace goes), so that the last test can prove none of them reached the operator's log.
SEEN_PASSWORDS: set[str] = set()
# On kind (hack/kind.sh e2e) RabbitMQ, Redis and PostgreSQL are the chart's pods, reached through
# port-forwards: the tests that stop and start the local servers of hack/backends.sh and
# hack/postgres.sh have nothing to stop there.
local_servers = pytest.mark.skipif(
    os.environ.get("PLATFORM_E2E_TARGET") == "kind",
    reason="stops and starts a local server of hack/backends.sh or hack/postgres.sh; on kind it is the chart's pod",
)


class KubectlError(Exception):
    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)}: {stderr.strip()}")
        self.stderr = stderr


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise KubectlError(list(args), proc.stderr)
    return proc


def apply(obj: dict[str, Any] | str, namespace: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    text = obj if isinstance(obj, str) else yaml.safe_dump(obj)
    return kubectl("apply", "--server-side", "--field-manager=e2e", "-n", namespace, "-f", "-", stdin=text, check=check)


def get(kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    proc = kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found", check=True)
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def list_names(kind: str, namespace: str, selector: str | None = None) -> list[str]:
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", selector]
    items = json.loads(kubectl(*args).stdout)["items"]
    return sorted(i["metadata"]["name"] for i in items)


def events(namespace: str) -> list[dict[str, Any]]:
    """The namespace's Events, as `kubectl get events` lists them."""
    return list(json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"])


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def eventually(fn: Callable[[], T | None], *, timeout: float = 60, interval: float = 0.5, what: str = "") -> T:
    """Polls fn until it returns something truthy; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or fn.__name__}; last: {last!r}")


def reachable(url: str) -> str:
    """A service's RABBITMQ_URL, REDIS_URL or DATABASE_URL, pointed where this process reaches the
    server. On kind the URLs name in-cluster hosts; hack/kind.sh forwards them and says where
    (PLATFORM_E2E_RABBITMQ_ADDRESS, PLATFORM_E2E_REDIS_ADDRESS, PLATFORM_E2E_POSTGRES_ADDRESS).
    Elsewhere the URL is kept."""
    parts = urlsplit(url)
    server = next(
        (name for prefix, name in (("amqp", "RABBITMQ"), ("redis", "REDIS"), ("postgres", "POSTGRES"))
         if parts.scheme.startswith(prefix)),
        "",
    )  # fmt: skip
    address = os.environ.get(f"PLATFORM_E2E_{server}_ADDRESS", "") if server else ""
    if not address:
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address))


def psvc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "platform.dev/v1alpha1",
        "kind": "PlatformService",
        "metadata": {"name": name},
        "spec": spec,
    }


def wait_ready(name: str, namespace: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get("psvc", name, namespace)
        gen = (obj or {}).get("metadata", {}).get("generation")
        ok = condition(obj, "Ready").get("status") == "True" and obj and obj["status"].get("observedGeneration") == gen
        return obj if ok else None

    return eventually(ready, timeout=timeout, what=f"{namespace}/{name} Ready")


def cond_is(
    name: str, namespace: str, type_: str, status: str, reason: str | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Waits until the PlatformService's condition `type_` has `status` (and `reason`, when given); returns it."""

    def check() -> dict[str, Any] | None:
        obj = get("psvc", name, namespace)
        c = condition(obj, type_)
        return obj if c.get("status") == status and (reason is None or c.get("reason") == reason) else None

    return eventually(check, timeout=timeout, what=f"{type_}={status} {reason or ''} on {namespace}/{name}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """The operator as a local process; under the identity of `kubeconfig` when given."""

    def __init__(
        self,
        log_path: Path,
        kubeconfig: Path | None = None,
        *,
        priority: int = 100,
        port_offset: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.kubeconfig = kubeconfig
        self.priority = priority
        # Free ports, not fixed ones: another run of the suite on the same machine (another checkout,
        # a CI run) would otherwise take them first and this operator would not start.
        self.liveness_port, self.metrics_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "PLATFORM_RESYNC_SECONDS": str(RESYNC_SECONDS),
            "PLATFORM_SWEEP_SECONDS": str(SWEEP_SECONDS),
            "PLATFORM_LIVENESS_PORT": str(self.liveness_port),
            "PLATFORM_METRICS_PORT": str(self.metrics_port),
            "PLATFORM_PEERING_PRIORITY": str(self.priority),
            "PLATFORM_PEERING_LIFETIME": "10",
            **self.extra_env,
        }
        if self.kubeconfig is not None:
            # As the chart runs it: the chart's identity, and kopf peering through its ClusterKopfPeering.
            env.update(
                KUBECONFIG=str(self.kubeconfig), PLATFORM_STANDALONE="false", PLATFORM_PEERING_NAME="platform-operator"
            )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "platform_operator"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_alive()

    def wait_alive(self, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log_tail()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"operator not alive after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no peering farewell, work cut off mid-way."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_mark(self) -> int:
        """Where the log ends now: `log_since(mark)` is what was written after."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")


class InClusterOperator:
    """The chart's own operator pods (kind): stopped and started by scaling its Deployment."""

    def __init__(self, namespace: str, deployment: str) -> None:
        self.namespace, self.deployment = namespace, deployment
        self.replicas = json.loads(kubectl("get", deployment, "-n", namespace, "-o", "json").stdout)["spec"]["replicas"]

    def stop(self) -> None:
        kubectl("scale", self.deployment, "-n", self.namespace, "--replicas=0")
        kubectl("wait", "pods", "-n", self.namespace, "-l", OPERATOR_PODS, "--for=delete", "--timeout=120s")

    def start(self) -> None:
        kubectl("scale", self.deployment, "-n", self.namespace, f"--replicas={self.replicas}")
        kubectl("rollout", "status", self.deployment, "-n", self.namespace, "--timeout=180s")

    def _pods(self) -> list[str]:
        """Every operator pod (with two replicas, the one acting may be either)."""
        out = kubectl("get", "pods", "-n", self.namespace, "-l", OPERATOR_PODS, "-o", "json", check=False).stdout
        return [p["metadata"]["name"] for p in json.loads(out or '{"items": []}')["items"]]

    def _logs(self, *args: str) -> dict[str, str]:
        return {
            pod: kubectl("logs", pod, "-n", self.namespace, "--tail=-1", *args, check=False).stdout
            for pod in self._pods()
        }

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(f"[{pod}] {line}" for pod, log in self._logs().items() for line in log.splitlines()[-lines:])

    def log_mark(self) -> str:
        # A time, not an offset: the kubelet rotates container logs, which shifts offsets.
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def log_since(self, mark: str) -> str:
        return "".join(self._logs(f"--since-time={mark}").values())


# The operator a session runs against: a local process (the chart's RBAC, or the developer's own
# kubeconfig) or the chart's pods on kind; tests that need a process skip for the pods.
Operator = OperatorProcess | InClusterOperator


def remember_passwords(namespace: str) -> None:
    import base64
    from urllib.parse import unquote, urlsplit

    out = kubectl("get", "secrets", "-n", namespace, "-l", "app.kubernetes.io/managed-by=platform-operator",
                  "-o", "json", check=False).stdout  # fmt: skip
    for item in json.loads(out or '{"items": []}')["items"]:
        for key in ("RABBITMQ_URL", "REDIS_URL"):
            value = (item.get("data") or {}).get(key)
            if value:
                password = urlsplit(base64.b64decode(value).decode()).password
                if password:
                    SEEN_PASSWORDS.add(unquote(password))


def writes_by_operator(audit_log: str, namespace: str, since: float) -> list[str]:
    """Writes in the namespace (from the API server's audit log) by anything but kubectl (the tests)
    and the cluster's own controllers: the operator's."""
    writes = []
    with open(audit_log) as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or ev.get("verb") in ("get", "list", "watch"):
                continue
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") != namespace:
                continue
            agent = ev.get("userAgent", "")
            if agent.startswith(("kubectl", "kube-controller-manager", "kube-scheduler", "kwok")):
                continue
            when = datetime.fromisoformat(ev["stageTimestamp"].replace("Z", "+00:00")).timestamp()
            if when >= since:
                writes.append(
                    f"{ev['verb']} {ref.get('resource')}/{ref.get('subresource', '')} {ref.get('name')} by {agent}"
                )
    return writes
