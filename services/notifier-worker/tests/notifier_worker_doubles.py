"""Test doubles of the outbound Notifier port (the only thing tests replace) and a polling helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from notifier_worker.domain.model import Notification
from notifier_worker.service_layer.ports import Notifier


class NotificationServiceDown(Exception):
    pass


class FlakyNotifier:
    """Fails the first `failures` sends, then delegates to the real adapter; records when it was called."""

    def __init__(self, inner: Notifier, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls: list[float] = []

    async def send(self, notification: Notification) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise NotificationServiceDown(f"attempt {len(self.calls)} refused")
        await self.inner.send(notification)


class SlowNotifier:
    """Takes `seconds` to send (forever when None), so that shutdown finds it in flight."""

    def __init__(self, inner: Notifier, seconds: float | None) -> None:
        self.inner = inner
        self.seconds = seconds
        self.started = asyncio.Event()
        self.finished_at: float | None = None
        self.cancelled = False

    async def send(self, notification: Notification) -> None:
        self.started.set()
        try:
            if self.seconds is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.seconds or 0)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        await self.inner.send(notification)
        self.finished_at = time.monotonic()


async def eventually(check: Callable[[], Awaitable[object]], within: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {within}s")
