"""The sweep of broker and Redis users whose PlatformService is gone (sweep.py), without a broker."""

from __future__ import annotations

import asyncio

import pytest

from platform_operator.rabbitmq import BrokerUnavailable
from platform_operator.redis_store import CacheUnavailable
from platform_operator.sweep import UserSweep, orphans

LIVE = {("shop", "orders"), ("shop", "notifier"), ("billing", "invoices")}


def exists(namespace: str, name: str) -> bool:
    return (namespace, name) in LIVE


USERS = ["shop.orders", "shop.gone", "billing.invoices", "billing.gone", "other.x", "admin", "guest", "nodot."]


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        ((), ["billing.gone", "other.x", "shop.gone"]),  # every namespace is watched
        (("shop",), ["shop.gone"]),
        (("shop", "billing"), ["billing.gone", "shop.gone"]),
        (("nowhere",), []),
    ],
    ids=["all", "one", "two", "unwatched"],
)
def test_orphans_are_users_whose_service_is_gone_in_watched_namespaces(namespaces, expected):
    assert orphans(USERS, exists, namespaces) == expected


@pytest.mark.parametrize("user", ["admin", "guest", "nodot.", "", "."])
def test_users_not_named_namespace_dot_name_are_never_orphans(user):
    asked: list[tuple[str, str]] = []

    def never(namespace: str, name: str) -> bool:
        asked.append((namespace, name))
        return False

    assert orphans([user], never) == []
    assert asked == []


def test_only_the_first_dot_separates_namespace_and_name():
    asked: list[tuple[str, str]] = []

    def record(namespace: str, name: str) -> bool:
        asked.append((namespace, name))
        return True

    assert orphans(["shop.orders.v2"], record) == []
    assert asked == [("shop", "orders.v2")]


def test_orphans_are_sorted_and_a_live_service_is_kept():
    assert orphans(["shop.z", "shop.orders", "shop.a"], exists) == ["shop.a", "shop.z"]
    assert orphans(["shop.orders", "shop.notifier"], exists) == []


# --- UserSweep with stand-in servers -----------------------------------------------------------------------


class Users:
    def __init__(self, users: list[str], fail: Exception | None = None) -> None:
        self.users, self.fail = users, fail
        self.deleted: list[str] = []

    async def service_users(self) -> list[str]:
        if self.fail is not None:
            raise self.fail
        return list(self.users)

    async def delete_user(self, user: str) -> bool:
        self.deleted.append(user)
        return user != "shop.already-gone"


def sweep(rabbit: Users | None, redis: Users | None, interval: float = 300.0, namespaces=()) -> UserSweep:
    return UserSweep(rabbit, redis, interval, tuple(namespaces))  # type: ignore[arg-type]


def test_run_removes_the_orphans_of_both_servers():
    rabbit, redis = Users(["shop.orders", "shop.gone"]), Users(["shop.gone", "billing.gone"])
    removed = asyncio.run(sweep(rabbit, redis, namespaces=["shop"]).run(exists))
    assert removed == ["rabbitmq shop.gone", "redis shop.gone"]
    assert (rabbit.deleted, redis.deleted) == (["shop.gone"], ["shop.gone"])


def test_a_user_gone_already_is_not_reported():
    rabbit = Users(["shop.already-gone", "shop.gone"])
    assert asyncio.run(sweep(rabbit, None).run(exists)) == ["rabbitmq shop.gone"]


@pytest.mark.parametrize(
    ("rabbit_fail", "redis_fail", "removed"),
    [
        (BrokerUnavailable("RabbitMQ unreachable (ConnectError)"), None, ["redis shop.gone"]),
        (None, CacheUnavailable("Redis unreachable (ConnectionError)"), ["rabbitmq shop.gone"]),
    ],
    ids=["broker-down", "redis-down"],
)
def test_one_server_down_does_not_stop_the_other(rabbit_fail, redis_fail, removed):
    rabbit, redis = Users(["shop.gone"], rabbit_fail), Users(["shop.gone"], redis_fail)
    assert asyncio.run(sweep(rabbit, redis).run(exists)) == removed


def test_nothing_managed_nothing_swept():
    assert asyncio.run(sweep(None, None).run(exists)) == []


def test_the_first_sweep_waits_one_interval_and_zero_never_sweeps():
    rabbit = Users(["shop.gone"])
    waiting = sweep(rabbit, None)
    assert not waiting.due()
    assert asyncio.run(waiting.maybe_run(exists)) == []
    assert not sweep(rabbit, None, interval=0).due()
    assert rabbit.deleted == []


def test_a_due_sweep_runs_once_then_waits_again():
    rabbit = Users(["shop.gone"])
    s = sweep(rabbit, None)
    s._next = 0.0  # as if the interval had passed
    assert s.due()
    assert asyncio.run(s.maybe_run(exists)) == ["rabbitmq shop.gone"]
    assert not s.due()
    assert asyncio.run(s.maybe_run(exists)) == []
    assert rabbit.deleted == ["shop.gone"]
