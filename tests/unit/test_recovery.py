"""A broker that lost its topology: every known service is reconciled at once, on the acting replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from platform_operator.rabbitmq import BrokerUnavailable
from platform_operator.recovery import BrokerWatch


class FakeBroker:
    def __init__(self) -> None:
        self.marker = False
        self.placed = 0
        self.down = False
        self.forgot = 0
        self.reconnected = asyncio.Event()

    async def marker_present(self) -> bool:
        if self.down:
            raise BrokerUnavailable("down")
        return self.marker

    async def place_marker(self) -> None:
        self.marker, self.placed = True, self.placed + 1

    def forget_view(self) -> None:
        self.forgot += 1

    def restart_empty(self) -> None:
        """The vhost came back without the marker, and the connection with it."""
        self.marker = False
        self.reconnected.set()


async def soon(done: Callable[[], object]) -> None:
    """Gives the watch's loop up to half a second to make `done()` true; the caller asserts."""
    for _ in range(50):
        if done():
            return
        await asyncio.sleep(0.01)


watches: list[BrokerWatch] = []


@pytest.fixture(autouse=True)
async def stop_watches() -> AsyncIterator[None]:
    yield
    for w in watches:
        await w.stop()
    watches.clear()


def watch(broker: FakeBroker, seen: list[tuple[str, str]], **kw: Any) -> BrokerWatch:
    w = BrokerWatch(broker, interval=kw.get("interval", 3600), attached_for=kw.get("attached_for", 60))  # type: ignore[arg-type]
    watches.append(w)

    async def reconcile(ns: str, name: str) -> None:
        seen.append((ns, name))

    w.attach(reconcile, lambda: [("a", "one"), ("b", "two")])
    return w


async def test_the_first_look_places_the_marker_without_a_recovery():
    broker, seen = FakeBroker(), []
    w = watch(broker, seen)
    assert await w.check() is False
    assert broker.placed == 1 and seen == []


async def test_a_marker_gone_later_reconciles_every_service_once():
    broker, seen = FakeBroker(), []
    w = watch(broker, seen)
    await w.check()
    assert await w.check() is False  # still there: nothing to do
    broker.marker = False  # the vhost was recreated
    assert await w.check() is True
    assert sorted(seen) == [("a", "one"), ("b", "two")]
    assert broker.marker and broker.forgot == 1 and w.recoveries == 1


async def test_an_unreachable_broker_is_no_recovery():
    broker, seen = FakeBroker(), []
    w = watch(broker, seen)
    await w.check()
    broker.down, broker.marker = True, False
    assert await w.check() is False and seen == []


async def test_a_reconnect_wakes_the_watch_attached_by_a_handler_and_a_standby_replica_does_nothing():
    broker, seen = FakeBroker(), []
    w = watch(broker, seen, interval=3600)
    await w.check()
    try:
        broker.restart_empty()
        await soon(lambda: seen)
        assert sorted(seen) == [("a", "one"), ("b", "two")]

        standby, quiet = FakeBroker(), []
        s = watch(standby, quiet, interval=0.01, attached_for=0)  # no timer attached it lately
        await s.check()
        standby.restart_empty()
        await asyncio.sleep(0.1)
        await s.stop()
        assert quiet == [] and not standby.marker
    finally:
        await w.stop()


async def test_the_first_look_is_at_once_so_an_early_wipe_is_recovered():
    broker, seen = FakeBroker(), []
    watch(broker, seen)  # attached: its loop looks for the marker before waiting
    await soon(lambda: broker.placed)
    assert broker.placed == 1
    broker.restart_empty()  # wiped seconds after the operator started
    await soon(lambda: seen)
    assert sorted(seen) == [("a", "one"), ("b", "two")]
