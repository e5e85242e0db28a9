"""The Kubernetes adapter (platform_operator.kube) against the real API server in KUBECONFIG."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from platform_operator.kube import FIELD_MANAGER, ConflictError, Kube, RefusedError

ROOT = Path(__file__).resolve().parents[2]


def kubectl(*args: str) -> str:
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_established(crd: str) -> None:
    """`kubectl wait` for a CRD applied a moment ago. Seen once in CI: right after the apply it exited
    1 within 0.1 s (its watch began just as the API server marked the CRD Established), so a failed
    wait is tried again before it counts."""
    for attempt in range(3):
        try:
            kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
            return
        except AssertionError:
            if attempt == 2:
                raise
            time.sleep(2)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("integration tests need a cluster: run `make test-e2e` (or set KUBECONFIG)", pytrace=False)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_established("crd/platformservices.platform.dev")
    name = f"it-kube-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    client = await Kube.connect()
    yield client
    await client.close()


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


async def test_get_of_a_missing_object_is_none(kube: Kube, namespace: str):
    assert await kube.get("v1", "Secret", namespace, "nope") is None


async def test_apply_creates_then_updates_under_one_field_manager(kube: Kube, namespace: str):
    created = await kube.apply(secret(namespace, "s1", {"a": "1"}))
    assert created["metadata"]["name"] == "s1"
    updated = await kube.apply(secret(namespace, "s1", {"a": "2"}))
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    managers = {m["manager"] for m in updated["metadata"]["managedFields"]}
    assert managers == {FIELD_MANAGER}


async def test_apply_of_the_same_object_changes_nothing(kube: Kube, namespace: str):
    first = await kube.apply(secret(namespace, "s2", {"a": "1"}))
    again = await kube.apply(secret(namespace, "s2", {"a": "1"}))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_an_invalid_object_is_refused_with_the_servers_reason(kube: Kube, namespace: str):
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"ports": [{"port": 70000}]},
    }
    with pytest.raises(RefusedError, match=r"spec\.ports"):
        await kube.apply(bad)


async def test_delete_honours_the_uid_precondition(kube: Kube, namespace: str):
    obj = await kube.apply(secret(namespace, "s3", {"a": "1"}))
    assert await kube.delete("v1", "Secret", namespace, "s3", "00000000-0000-0000-0000-000000000000") is False
    assert await kube.get("v1", "Secret", namespace, "s3") is not None
    assert await kube.delete("v1", "Secret", namespace, "s3", obj["metadata"]["uid"]) is True
    assert await kube.get("v1", "Secret", namespace, "s3") is None


async def test_patch_status_writes_only_the_status(kube: Kube, namespace: str):
    psvc = {
        "apiVersion": "platform.dev/v1alpha1",
        "kind": "PlatformService",
        "metadata": {"name": "svc", "namespace": namespace},
        "spec": {"type": "worker", "image": "example/w:1"},
    }
    created = await kube.apply(psvc)
    await kube.patch_status(namespace, "svc", {"observedGeneration": 1, "url": "http://x"})
    now = await kube.get("platform.dev/v1alpha1", "PlatformService", namespace, "svc")
    assert now is not None
    assert now["status"] == {"observedGeneration": 1, "url": "http://x"}
    assert now["metadata"]["generation"] == created["metadata"]["generation"]


async def test_create_makes_the_object_once_and_answers_none_when_it_exists(kube: Kube, namespace: str):
    first = await kube.create(secret(namespace, "c1", {"a": "1"}))
    assert first is not None
    assert await kube.create(secret(namespace, "c1", {"a": "2"})) is None
    live = await kube.get("v1", "Secret", namespace, "c1")
    assert live is not None
    assert live["data"] == {"a": "MQ=="}  # the first one's, untouched


async def test_a_created_object_is_owned_as_if_applied(kube: Kube, namespace: str):
    created = await kube.create(secret(namespace, "c2", {"a": "1", "b": "2"}))
    assert created is not None
    assert [(m["manager"], m["operation"]) for m in created["metadata"]["managedFields"]] == [(FIELD_MANAGER, "Apply")]
    # A later apply that leaves a key out removes it: no entry of the POST keeps it alive.
    applied = await kube.apply(secret(namespace, "c2", {"a": "1"}))
    assert set(applied["data"]) == {"a"}


async def test_apply_onto_a_version_refuses_a_stale_one(kube: Kube, namespace: str):
    first = await kube.apply(secret(namespace, "c3", {"a": "1"}))
    second = await kube.apply(secret(namespace, "c3", {"a": "2"}))
    with pytest.raises(ConflictError):
        await kube.apply(secret(namespace, "c3", {"a": "3"}), if_version=first["metadata"]["resourceVersion"])
    third = await kube.apply(secret(namespace, "c3", {"a": "3"}), if_version=second["metadata"]["resourceVersion"])
    assert third["data"] == {"a": "Mw=="}
