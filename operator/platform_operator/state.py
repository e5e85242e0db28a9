"""What the operator process keeps between reconciles (nothing of it lives at module level)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_operator import observability


@dataclass
class ReconcileState:
    """What this process keeps between reconciles, made once at startup (handlers.configure keeps
    it in kopf's memo, whose per-object copies share it): the per-object locks, the reconciles
    queued behind each, the version of each child our last write left, and the readiness gauge's
    records."""

    # Handlers for the object itself and for its children may fire together: one reconcile at a time.
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # Reconciles of an object queued behind the one running: they have not read anything yet.
    waiting: dict[tuple[str, str], int] = field(default_factory=dict)
    # The resourceVersion of each child as our last write left it: its watch event is our own echo.
    written: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # What a reconcile reads of each child (status.child_inputs) as last seen: a child's event that
    # leaves it equal (a rollout's counts other than those the status shows) needs no reconcile.
    inputs: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    readiness: observability.Readiness = field(default_factory=observability.Readiness)

    def lock_for(self, namespace: str, name: str) -> asyncio.Lock:
        """One reconcile of an object at a time."""
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    @contextlib.asynccontextmanager
    async def turn(self, namespace: str, name: str, *, may_skip: bool) -> AsyncIterator[bool]:
        """Waits for the object's turn (one reconcile of it at a time) and holds it inside the block.
        Yields False at once, without waiting, when `may_skip` and another reconcile is already queued
        behind the running one: that one reads everything afresh and covers this trigger too."""
        key = (namespace, name)
        lock = self.lock_for(namespace, name)
        if may_skip and lock.locked() and self.waiting.get(key, 0) > 0:
            yield False
            return
        self.waiting[key] = self.waiting.get(key, 0) + 1
        try:
            await lock.acquire()
        finally:
            # Never raises: an exception here, after the lock was taken, would leave it held for good.
            left = self.waiting.pop(key, 1) - 1
            if left > 0:
                self.waiting[key] = left
        try:
            yield True
        finally:
            lock.release()

    def forget(self, namespace: str, name: str) -> None:
        """Drops what this process keeps about a PlatformService that is gone."""
        self.locks.pop((namespace, name), None)  # a reconcile still holding or awaiting it keeps its own reference
        children = {name, f"{name}-platform"}  # never another service's whose name starts with this one
        for records in (self.written, self.inputs):
            for key in [k for k in records if k[1] == namespace and k[2] in children]:
                records.pop(key, None)
        self.readiness.forget(namespace, name)

    def is_own_echo(self, kind: str, meta: Mapping[str, Any]) -> bool:
        """True when a child's watch event shows exactly the version our last apply produced: nothing
        changed since we wrote it, so there is nothing to check."""
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        version = meta.get("resourceVersion")
        return version is not None and self.written.get(key) == version

    def inputs_changed(self, kind: str, meta: Mapping[str, Any], inputs: bytes | None) -> bool:
        """Records what a reconcile would read of this child now (None: it is gone); True when that
        differs from what was last recorded (or nothing was)."""
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        if inputs is None:
            self.inputs.pop(key, None)
            return True
        before, self.inputs[key] = self.inputs.get(key), inputs
        return before != inputs

    def remember_write(self, live: Mapping[str, Any]) -> None:
        meta = live.get("metadata") or {}
        version = meta.get("resourceVersion")
        if version:
            self.written[(str(live.get("kind")), str(meta.get("namespace")), str(meta.get("name")))] = str(version)
