"""Kube.read: children as the watch last reported them (the cache alone; the API server is a stub
that counts the reads which reach it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from platform_operator.kube import Kube


class CountingKube(Kube):
    def __init__(self, server: dict[tuple[str, str], dict[str, Any]], max_age: float = 600.0) -> None:
        super().__init__(None, max_age=max_age)  # no connection: get() below answers instead
        self.server = server
        self.gets: list[tuple[str, str]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((kind, name))
        return self.server.get((kind, name))


def deployment(name: str, version: str, *, ours: bool = True, replicas: int = 1) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "platform-operator"} if ours else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": version,
            "labels": labels,
            "managedFields": [{"manager": "platform-operator", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"replicas": replicas},
    }


def read(kube: Kube, name: str, **kw: Any) -> dict[str, Any] | None:
    return asyncio.run(kube.read("apps/v1", "Deployment", "ns", name, **kw))


def test_a_child_the_watch_reported_is_read_from_it_without_managed_fields():
    kube = CountingKube({})
    kube.observe(deployment("a", "7", replicas=3))
    live = read(kube, "a")
    assert live is not None
    assert (live["metadata"]["resourceVersion"], live["spec"]["replicas"]) == ("7", 3)
    assert "managedFields" not in live["metadata"]
    assert kube.gets == []


def test_the_latest_report_wins_and_each_read_is_a_copy_of_its_own():
    kube = CountingKube({})
    kube.observe(deployment("a", "7"))
    kube.observe(deployment("a", "8", replicas=2))
    first = read(kube, "a")
    assert first is not None and first["metadata"]["resourceVersion"] == "8"
    first["spec"]["replicas"] = 99  # a caller that edits what it read changes nothing kept
    again = read(kube, "a")
    assert again is not None and again["spec"]["replicas"] == 2


def test_an_unreported_child_is_asked_of_the_api_server_and_kept_when_it_is_ours():
    kube = CountingKube({("Deployment", "a"): deployment("a", "3")})
    assert read(kube, "a") is not None
    assert read(kube, "a") is not None
    assert kube.gets == [("Deployment", "a")]


def test_an_object_not_labelled_as_ours_is_asked_for_every_time():
    """The watch never reports it, so nothing would tell the cache that it changed or went."""
    kube = CountingKube({("Deployment", "a"): deployment("a", "3", ours=False)})
    read(kube, "a")
    read(kube, "a")
    assert kube.gets == [("Deployment", "a"), ("Deployment", "a")]


def test_a_known_absence_is_trusted_only_when_asked_to():
    """Before applying, absence is checked with the API server: an object made by hand since,
    without our label, must not be applied over. Deleting our own leftovers may trust it."""
    kube = CountingKube({})
    kube.observe(deployment("a", "7"))
    kube.observe_gone("Deployment", "ns", "a")
    assert read(kube, "a", trust_absence=True) is None
    assert kube.gets == []
    kube.server[("Deployment", "a")] = deployment("a", "9", ours=False)
    live = read(kube, "a")
    assert live is not None and live["metadata"]["resourceVersion"] == "9"
    assert kube.gets == [("Deployment", "a")]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The cache's clock, moved forward by hand: clock[0] += seconds."""
    now = [1000.0]
    monkeypatch.setattr("platform_operator.kube.time.monotonic", lambda: now[0])
    return now


def test_a_version_older_than_max_age_is_read_again(clock: list[float]):
    """A deletion the watch missed (its stream restarted) is found once the entry is that old."""
    kube = CountingKube({}, max_age=600)
    kube.observe(deployment("a", "7"))
    clock[0] += 599
    assert read(kube, "a") is not None
    clock[0] += 2
    assert read(kube, "a") is None  # gone from the API server, and now known to be
    assert kube.gets == [("Deployment", "a")]
    assert read(kube, "a", trust_absence=True) is None
    assert kube.gets == [("Deployment", "a")]


def test_absences_of_deleted_services_are_swept_after_max_age(clock: list[float]):
    kube = CountingKube({}, max_age=600)
    kube.observe(deployment("kept", "1"))
    for i in range(100):
        kube.observe_gone("Deployment", "ns", f"gone{i}")
    clock[0] += 601
    kube.observe_gone("Deployment", "ns", "last")
    assert len(kube._seen) == 2  # "kept" and "last"
    assert kube.observed == 1


def test_with_max_age_zero_every_read_asks_the_api_server():
    kube = CountingKube({("Deployment", "a"): deployment("a", "3")}, max_age=0)
    kube.observe(deployment("a", "2"))
    kube.observe_gone("Deployment", "ns", "a")
    read(kube, "a", trust_absence=True)
    read(kube, "a")
    assert kube.gets == [("Deployment", "a"), ("Deployment", "a")]


def test_a_version_older_than_the_one_held_is_not_kept():
    """The answer to our own write can come before the watch's event of the version before it."""
    kube = CountingKube({})
    kube.observe(deployment("a", "12", replicas=2))
    kube.observe(deployment("a", "11", replicas=1))
    live = read(kube, "a")
    assert live is not None and (live["metadata"]["resourceVersion"], live["spec"]["replicas"]) == ("12", 2)
    kube.observe_gone("Deployment", "ns", "a")
    kube.observe(deployment("a", "5"))  # made again: whatever its version, it follows a known absence
    live = read(kube, "a")
    assert live is not None and live["metadata"]["resourceVersion"] == "5"


def test_a_platformservice_is_read_from_the_watch_and_kept_after_a_read_although_unlabelled():
    psvc = {
        "apiVersion": "platform.dev/v1alpha1",
        "kind": "PlatformService",
        "metadata": {"name": "orders", "namespace": "ns", "resourceVersion": "4"},
        "spec": {"type": "api"},
    }
    kube = CountingKube({("PlatformService", "orders"): psvc})

    def read_psvc() -> dict[str, Any] | None:
        return asyncio.run(kube.read("platform.dev/v1alpha1", "PlatformService", "ns", "orders"))

    assert read_psvc() == psvc
    assert read_psvc() == psvc
    assert kube.gets == [("PlatformService", "orders")]
    kube.observe({**psvc, "metadata": {**psvc["metadata"], "resourceVersion": "5"}, "spec": {"type": "data"}})
    live = read_psvc()
    assert live is not None and live["spec"] == {"type": "data"}
    assert len(kube.gets) == 1
