"""A broker that lost everything (restarted empty, its vhost recreated) gets every service back at once.

The resync would repair each service within one interval, one by one; at a thousand services that
is a minute of services whose queues are gone. The operator keeps a marker exchange in the vhost
(rabbitmq.MARKER_EXCHANGE); when its AMQP connection comes back after a loss, and every
`broker_check_seconds` besides, it looks for the marker, and where it is gone it places it again
and reconciles every PlatformService it knows, now.

Only the replica that acts recovers: the create, resume and resync handlers, which kopf runs there
alone, attach the watch (with kopf's indexes, which the reconciles need); a watch no handler
attached lately stands by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from platform_operator.rabbitmq import BrokerError, RabbitMQ

log = logging.getLogger("platform_operator")

Reconcile = Callable[[str, str], Awaitable[None]]
Known = Callable[[], Iterable[tuple[str, str]]]


class BrokerWatch:
    def __init__(self, rabbitmq: RabbitMQ, interval: float, attached_for: float) -> None:
        self.rabbitmq = rabbitmq
        self.interval = interval
        self.attached_for = attached_for  # a timer this long ago still counts as acting
        self._attached_at = float("-inf")
        self._reconcile: Reconcile | None = None
        self._known: Known | None = None
        self._marked = False  # the marker was seen or placed by this process
        self._task: asyncio.Task[None] | None = None
        self.recoveries = 0

    def attach(self, reconcile: Reconcile, known: Known) -> None:
        """Called from the handlers: this replica acts, and this is how to reach every service."""
        self._attached_at = time.monotonic()
        self._reconcile, self._known = reconcile, known
        # Started here, not at startup: the task inherits a handler's context, which kopf's Events
        # (posted by the reconciles it runs) need.
        self.start()

    @property
    def acting(self) -> bool:
        return time.monotonic() - self._attached_at < self.attached_for

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        first = True
        while True:
            if not first or self._marked:
                with contextlib.suppress(asyncio.TimeoutError):
                    timeout = self.interval if self.interval > 0 else None
                    await asyncio.wait_for(self.rabbitmq.reconnected.wait(), timeout)
                self.rabbitmq.reconnected.clear()
            # The first look at once: a wipe after it, however soon, is then told from a fresh broker.
            first = False
            if not self.acting:
                continue
            try:
                await self.check()
            except Exception:  # the watch must outlive any one failure
                log.exception("Broker check failed")

    async def check(self) -> bool:
        """Looks for the marker; gone, places it and reconciles every service. True if it recovered."""
        try:
            present = await self.rabbitmq.marker_present()
            if not present:
                await self.rabbitmq.place_marker()
        except BrokerError as exc:
            log.warning(f"Broker check skipped: {exc}")
            return False
        if present or not self._marked:
            # The first look of this process: every service is reconciled on start anyway.
            self._marked = True
            return False
        await self.recover()
        return True

    async def recover(self) -> None:
        if self._reconcile is None or self._known is None:
            return
        self.recoveries += 1
        self.rabbitmq.forget_view()
        services = sorted(set(self._known()))
        log.warning(f"The broker lost its topology (marker gone): declaring every service's again ({len(services)}).")
        start = time.monotonic()
        reconcile = self._reconcile
        results = await asyncio.gather(*(reconcile(ns, name) for ns, name in services), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        log.warning(
            f"Broker recovery: {len(services) - len(failed)} of {len(services)} services reconciled in "
            f"{time.monotonic() - start:.1f}s"
            + (f"; {len(failed)} left to their retries and resync (first: {failed[0]})." if failed else ".")
        )
