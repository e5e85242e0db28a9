"""Conditions in the metav1.Condition shape, and the status the operator writes.

Pure functions: the reconciler decides each aspect's state, these merge it into the previous
status so that `lastTransitionTime` moves only when a condition's status really changes, and an
unchanged status compares equal (which is what lets a resync end with no write at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
DEPLOYMENT_READY = "DeploymentReady"
QUEUES_READY = "QueuesReady"
CACHE_READY = "CacheReady"
INGRESS_READY = "IngressReady"
DATABASE_READY = "DatabaseReady"
DEPENDENCIES_READY = "DependenciesReady"
ASPECTS = (DEPLOYMENT_READY, QUEUES_READY, CACHE_READY, INGRESS_READY, DATABASE_READY, DEPENDENCIES_READY)


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str

    @classmethod
    def true(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, "True", reason, message)

    @classmethod
    def false(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, "False", reason, message)

    @classmethod
    def unknown(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, "Unknown", reason, message)

    @classmethod
    def from_dict(cls, cond: Mapping[str, Any]) -> Condition:
        """A condition as recorded in status (timestamps and generation are merge_conditions' part)."""
        return cls(str(cond["type"]), str(cond["status"]), str(cond.get("reason", "")), str(cond.get("message", "")))


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize(aspects: Iterable[Condition]) -> Condition:
    """Ready is True when no aspect is False or Unknown-for-a-problem; the first bad one explains why.

    An aspect that is Unknown only because its feature is not provisioned by this operator version
    (reason NotManaged) does not hold Ready back.
    """
    aspects = list(aspects)
    bad = [c for c in aspects if c.status == "False"]
    if bad:
        first = bad[0]
        return Condition.false(READY, first.reason, f"{first.type}: {first.message}")
    pending = [c for c in aspects if c.status == "Unknown" and c.reason != "NotManaged"]
    if pending:
        first = pending[0]
        return Condition.unknown(READY, first.reason, f"{first.type}: {first.message}")
    return Condition.true(READY, "AllReady", "Everything the service declares is in place and its pods are ready.")


def merge_conditions(
    previous: Iterable[Mapping[str, Any]], current: Iterable[Condition], generation: int, now: str
) -> list[dict[str, Any]]:
    """The new conditions list: ordered by `current`, keeping transition times where status held."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        keep_time = old is not None and old.get("status") == cond.status and old.get("lastTransitionTime")
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": old["lastTransitionTime"] if keep_time and old else now,
                "observedGeneration": generation,
            }
        )
    return merged


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields whose value differs; empty means no write is needed."""
    return {k: v for k, v in desired.items() if current.get(k) != v}
