"""Logging in as kubectl would, against the real API server in KUBECONFIG: a kubeconfig whose user
is an exec plugin, a token that is revoked while the client runs, a pod's service account.

The identities are ServiceAccounts of a test namespace with tokens from the TokenRequest API
(`kubectl create token`); the kubeconfigs written here hold no other credential, so whatever
succeeds succeeded with those tokens."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.config import incluster_config

from platform_operator.kube import FIELD_MANAGER, Kube

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXEC_API = "client.authentication.k8s.io/v1"
# The tests point KUBECONFIG elsewhere while they run; kubectl keeps the administrator's.
ADMIN_KUBECONFIG = os.environ.get("KUBECONFIG", "")


def kubectl(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig) if kubeconfig else ADMIN_KUBECONFIG}
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def admin_cluster() -> dict[str, object]:
    """The cluster entry (server, CA) of the admin kubeconfig, without its user."""
    view = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster: dict[str, object] = view["clusters"][0]
    return cluster


def write_kubeconfig(path: Path, user: dict[str, object]) -> Path:
    cluster = admin_cluster()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "it-user", "user": user}],
        "contexts": [{"name": "it", "context": {"cluster": cluster["name"], "user": "it-user"}}],
        "current-context": "it",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class Identities:
    """ServiceAccounts bound to cluster-admin for the length of the module (the operator, started
    below under one of them, watches cluster-scoped resources too)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.bindings: list[str] = []

    def new(self, name: str) -> str:
        """A ServiceAccount with cluster-admin, and a fresh token of it."""
        kubectl("create", "serviceaccount", name, "-n", self.namespace)
        binding = f"{self.namespace}-{name}"
        kubectl(
            "create", "clusterrolebinding", binding, "--clusterrole=cluster-admin",
            f"--serviceaccount={self.namespace}:{name}",
        )  # fmt: skip
        self.bindings.append(binding)
        return kubectl("create", "token", name, "-n", self.namespace, "--duration=1h").stdout.strip()

    def revoke(self, name: str, token: str, workdir: Path) -> None:
        """Deletes the ServiceAccount, and waits until its tokens are refused."""
        kubectl("delete", "serviceaccount", name, "-n", self.namespace)
        probe = write_kubeconfig(workdir / f"probe-{name}", {"token": token})
        deadline = time.monotonic() + 30
        while kubectl("get", "secrets", "-n", self.namespace, kubeconfig=probe, check=False).returncode == 0:
            assert time.monotonic() < deadline, f"the token of {name} is still accepted 30 s after its deletion"
            time.sleep(0.5)

    def close(self) -> None:
        for binding in self.bindings:
            kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found")


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("integration tests need a cluster: run `make test-e2e` (or set KUBECONFIG)", pytrace=False)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/platformservices.platform.dev")
    name = f"it-login-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def identities(namespace: str) -> Iterator[Identities]:
    ids = Identities(namespace)
    yield ids
    ids.close()


class ExecPlugin:
    """A credential plugin as kubectl runs them: prints an ExecCredential with the token in `token`,
    and counts its runs in `runs`."""

    def __init__(self, workdir: Path, token: str) -> None:
        self.token_file, self.runs_file = workdir / "token", workdir / "runs"
        self.set_token(token)
        self.script = workdir / "credential-plugin"
        self.script.write_text(
            "#!/bin/sh\n"
            f'echo run >> "{self.runs_file}"\n'
            f'printf \'{{"apiVersion":"{EXEC_API}","kind":"ExecCredential","status":{{"token":"%s"}}}}\' '
            f'"$(cat "{self.token_file}")"\n'
        )
        self.script.chmod(0o755)
        self.kubeconfig = write_kubeconfig(
            workdir / "kubeconfig",
            {"exec": {"apiVersion": EXEC_API, "command": str(self.script), "interactiveMode": "Never"}},
        )

    def set_token(self, token: str) -> None:
        self.token_file.write_text(token)

    @property
    def runs(self) -> int:
        return len(self.runs_file.read_text().splitlines()) if self.runs_file.exists() else 0


def secret(namespace: str, name: str, value: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"value": value}}  # fmt: skip


async def test_a_kubeconfig_exec_plugin_logs_in_for_apply_read_and_delete(
    identities: Identities, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plugin = ExecPlugin(tmp_path, identities.new("exec-user"))
    monkeypatch.setenv("KUBECONFIG", str(plugin.kubeconfig))
    kube = await Kube.connect()
    try:
        applied = await kube.apply(secret(namespace, "by-exec", "1"))
        assert {m["manager"] for m in applied["metadata"]["managedFields"]} == {FIELD_MANAGER}
        live = await kube.get("v1", "Secret", namespace, "by-exec")
        assert live is not None and base64.b64decode(live["data"]["value"]) == b"1"
        assert await kube.delete("v1", "Secret", namespace, "by-exec", applied["metadata"]["uid"]) is True
        assert await kube.get("v1", "Secret", namespace, "by-exec") is None
    finally:
        await kube.close()
    assert plugin.runs == 1  # run once at login; its token served every request


async def test_a_token_revoked_while_the_client_runs_is_replaced_by_the_plugins_next_one(
    identities: Identities, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    first = identities.new("rotating-1")
    plugin = ExecPlugin(tmp_path, first)
    monkeypatch.setenv("KUBECONFIG", str(plugin.kubeconfig))
    kube = await Kube.connect()
    try:
        await kube.apply(secret(namespace, "rotating", "1"))
        assert plugin.runs == 1

        plugin.set_token(identities.new("rotating-2"))
        identities.revoke("rotating-1", first, tmp_path)

        updated = await kube.apply(secret(namespace, "rotating", "2"))  # 401 with the old token, then the new one
        assert base64.b64decode(updated["data"]["value"]) == b"2"
        assert plugin.runs == 2
        assert await kube.get("v1", "Secret", namespace, "rotating") is not None
        assert plugin.runs == 2  # the new token is kept, not fetched per request
    finally:
        await kube.close()


async def test_in_a_pod_the_service_account_token_file_is_read_again_when_rotated(
    identities: Identities, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A pod's view of the cluster: KUBERNETES_SERVICE_HOST/PORT, and the token and CA files the
    kubelet mounts (here in tmp_path). The kubelet rewrites the token file; the old token stops
    being accepted."""
    cluster = admin_cluster()["cluster"]
    assert isinstance(cluster, dict)
    host, port = str(cluster["server"]).removeprefix("https://").rsplit(":", 1)
    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    first = identities.new("pod-1")
    token_file.write_text(first)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca_file))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # nothing to fall back on

    kube = await Kube.connect()
    try:
        await kube.apply(secret(namespace, "in-pod", "1"))
        token_file.write_text(identities.new("pod-2"))
        identities.revoke("pod-1", first, tmp_path)
        updated = await kube.apply(secret(namespace, "in-pod", "2"))
        assert base64.b64decode(updated["data"]["value"]) == b"2"
    finally:
        await kube.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_operator_logged_in_through_an_exec_plugin_makes_a_service_ready(
    identities: Identities, namespace: str, tmp_path: Path
):
    """kopf's login (its watches, events) and the operator's own client, both through the plugin."""
    plugin = ExecPlugin(tmp_path, identities.new("operator"))
    liveness = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_RABBITMQ", "PLATFORM_REDIS"))
    }  # no RabbitMQ or Redis: QueuesReady and CacheReady are NotManaged
    env.update(
        KUBECONFIG=str(plugin.kubeconfig),
        PLATFORM_NAMESPACES=namespace,
        PLATFORM_LIVENESS_PORT=str(liveness),
        PLATFORM_METRICS_PORT=str(free_port()),
        PLATFORM_STANDALONE="true",
    )
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "platform_operator"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"operator exited:\n{log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"operator not alive:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.5)
        psvc = {
            "apiVersion": "platform.dev/v1alpha1",
            "kind": "PlatformService",
            "metadata": {"name": "exec-worker", "namespace": namespace},
            "spec": {"type": "worker", "image": "example/worker:1"},
        }
        (tmp_path / "psvc.yaml").write_text(yaml.safe_dump(psvc))
        kubectl("apply", "-f", str(tmp_path / "psvc.yaml"))
        waited = kubectl(
            "wait", "-n", namespace, "psvc/exec-worker", "--for=condition=Ready", "--timeout=120s", check=False
        )
        assert waited.returncode == 0, f"{waited.stderr}\noperator log:\n{log_path.read_text()[-3000:]}"
        shown = kubectl("get", "deployment", "exec-worker", "-n", namespace, "-o", "json", "--show-managed-fields")
        deployment = json.loads(shown.stdout)
        assert FIELD_MANAGER in {m["manager"] for m in deployment["metadata"]["managedFields"]}
        assert plugin.runs >= 2  # kopf's login and the operator's client each ran it
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
