"""A hostile namespace: everything it can ask for, tried with its own credentials.

Each test runs a victim namespace (`ns`, as the samples run: a publisher, a consumer, keys in
Redis, an ingress host) and an attacker namespace holding only its own PlatformServices, which
ask for the victim's names. The attacker's pods would hold the URLs of its credentials Secret:
the tests use exactly those, and afterwards check that the victim's keys and queued messages are
intact, also after the attacker is deleted under `deletionPolicy: Delete`.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
import redis
from aiormq.exceptions import AMQPConnectionError, ChannelAccessRefused, ChannelNotFoundEntity
from e2e_kube import RESYNC_SECONDS, SWEEP_SECONDS, apply, cond_is, condition, eventually, get, kubectl, psvc, reachable
from e2e_kube import wait_ready as _wait_ready

ORDERS_EVENTS = 5


@pytest.fixture
def evil(ns: str) -> Iterator[str]:
    """The attacker's namespace, beside the victim's `ns`, under the same Pod Security profile."""
    name = f"evil-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl("delete", "psvc", "--all", "-n", name, "--timeout=90s", check=False)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait_ready(name: str, namespace: str) -> dict[str, Any]:
    return _wait_ready(name, namespace, timeout=120)


def secret_urls(name: str, namespace: str) -> dict[str, str]:
    """The attacker's own credentials, as its pods get them (pointed where this process reaches)."""
    secret = get("secret", f"{name}-platform", namespace)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return {k: reachable(data[k]) for k in ("RABBITMQ_URL", "REDIS_URL") if k in data}


def delete_under_delete_policy(name: str, namespace: str) -> None:
    kubectl("patch", "psvc", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Delete"}}')
    kubectl("delete", "psvc", name, "-n", namespace, "--timeout=90s")


def victim_publisher() -> dict[str, Any]:
    return psvc(
        "orders-api",
        type="api",
        image="example/orders:1",
        messaging={"publishes": [{"name": "orders", "type": "topic"}]},
        redis={"keys": [{"key": "greeting", "value": "victim's"}]},
    )


def victim_consumer() -> dict[str, Any]:
    return psvc(
        "notifier-worker",
        type="worker",
        image="example/notifier:1",
        messaging={"consumes": [{"queue": "notifier.orders", "exchange": "orders", "routingKeys": ["order.*"]}]},
    )


def publish(mq: httpx.Client, exchange: str, payload: str, key: str = "order.created") -> bool:
    body = {"properties": {}, "routing_key": key, "payload": payload, "payload_encoding": "string"}
    resp = mq.post(f"/exchanges/%2F/{quote(exchange, safe='')}/publish", json=body)
    resp.raise_for_status()
    return bool(resp.json()["routed"])


def queued(mq: httpx.Client, queue: str) -> int:
    """Messages in a queue, as the management API counts them (refreshed every few seconds)."""
    resp = mq.get(f"/queues/%2F/{quote(queue, safe='')}")
    return int(resp.json().get("messages") or 0) if resp.status_code == 200 else -1


# --- Redis -----------------------------------------------------------------------------------------


def test_a_redis_prefix_naming_another_namespace_stays_in_the_attackers_own(ns: str, evil: str, rds: redis.Redis):
    apply(victim_publisher(), ns)
    wait_ready("orders-api", ns)
    rds.set(f"{ns}:orders-api:idem:42", "victim's order")

    apply(psvc("spy", type="worker", image="example/notifier:1", redis={"keyPrefix": f"{ns}:orders-api"}), evil)
    obj = wait_ready("spy", evil)
    assert obj["status"]["redis"]["keyPrefix"] == f"{evil}:{ns}:orders-api"  # under its own namespace

    r = redis.Redis.from_url(secret_urls("spy", evil)["REDIS_URL"], decode_responses=True)
    try:
        r.set(f"{evil}:{ns}:orders-api:mine", "1")  # its own keys work
        attempts = {
            "GET": lambda: r.get(f"{ns}:orders-api:idem:42"),
            "SET": lambda: r.set(f"{ns}:orders-api:idem:42", "overwritten"),
            "UNLINK": lambda: r.unlink(f"{ns}:orders-api:greeting"),
            "SCAN": lambda: r.scan(0),
            "RANDOMKEY": lambda: r.randomkey(),
            "FUNCTION FLUSH": lambda: r.function_flush(),
            "SCRIPT FLUSH": lambda: r.script_flush(),
            "PUBSUB CHANNELS": lambda: r.pubsub_channels(),
            "FLUSHALL": lambda: r.flushall(),
        }
        allowed = []
        for what, attempt in attempts.items():
            try:
                attempt()
            except redis.exceptions.NoPermissionError:
                continue
            allowed.append(what)
        assert allowed == []
    finally:
        r.close()

    delete_under_delete_policy("spy", evil)
    assert rds.get(f"{ns}:orders-api:idem:42") == "victim's order"
    assert rds.get(f"{ns}:orders-api:greeting") == "victim's"
    assert rds.get(f"{evil}:{ns}:orders-api:mine") is None  # its own keys went with it


def test_a_prefix_nesting_in_another_services_is_refused_and_its_deletion_keeps_the_holders_keys(
    ns: str, rds: redis.Redis
):
    apply(victim_publisher(), ns)
    wait_ready("orders-api", ns)
    rds.set(f"{ns}:orders-api:cache:1", "holder's")

    apply(psvc("nested", type="worker", image="example/notifier:1", redis={"keyPrefix": "orders-api:cache"}), ns)
    obj = cond_is("nested", ns, "CacheReady", "False", "KeyPrefixClaimed")
    message = condition(obj, "CacheReady")["message"]
    assert f"PlatformService {ns}/orders-api" in message and f"{ns}:orders-api" in message
    assert condition(obj, "Ready")["status"] == "False"
    assert rds.acl_getuser(f"{ns}.nested") is None  # no user, no key

    delete_under_delete_policy("nested", ns)
    assert rds.get(f"{ns}:orders-api:cache:1") == "holder's"


# --- RabbitMQ --------------------------------------------------------------------------------------


async def _attack_broker(url: str, victim_queue: str, victim_exchange: str, own_queue: str) -> list[str]:
    """Every broker-side attack with the attacker's own AMQP credentials; returns those allowed."""

    async def delete_queue(ch: Any) -> None:
        await ch.queue_delete(victim_queue)

    async def delete_exchange(ch: Any) -> None:
        await ch.exchange_delete(victim_exchange)

    async def consume_victim_queue(ch: Any) -> None:
        await (await ch.get_queue(victim_queue, ensure=False)).get(fail=False)

    async def forge_event(ch: Any) -> None:
        await (await ch.get_exchange(victim_exchange, ensure=False)).publish(aio_pika.Message(b"forged"), "order.x")
        await ch.get_exchange(victim_exchange)  # a round trip, so that a refusal has arrived

    async def forge_into_queue(ch: Any) -> None:
        await ch.default_exchange.publish(aio_pika.Message(b"forged"), victim_queue)
        await ch.get_queue(own_queue)

    async def bind_to_victim(ch: Any) -> None:
        await (await ch.get_queue(own_queue)).bind(victim_exchange, "#")

    async def redeclare_victim_queue(ch: Any) -> None:
        await ch.declare_queue(victim_queue, durable=True, arguments={"x-max-length": 1})

    allowed = []
    conn = await aio_pika.connect(url)
    try:
        for attack in (
            delete_queue,
            delete_exchange,
            consume_victim_queue,
            forge_event,
            forge_into_queue,
            bind_to_victim,
            redeclare_victim_queue,
        ):
            channel = await conn.channel()
            try:
                await attack(channel)
            except (ChannelAccessRefused, ChannelNotFoundEntity):
                continue
            allowed.append(attack.__name__)
    finally:
        await conn.close()
    return allowed


def test_the_victims_queues_and_exchanges_are_out_of_reach_of_another_namespace(ns: str, evil: str, mq: httpx.Client):
    apply(victim_publisher(), ns)
    apply(victim_consumer(), ns)
    wait_ready("orders-api", ns)
    wait_ready("notifier-worker", ns)
    victim_exchange, victim_queue = f"{ns}.orders", f"{ns}.notifier.orders"
    for i in range(ORDERS_EVENTS):
        assert publish(mq, victim_exchange, f"order {i}")

    spy = psvc(
        "spy",
        type="worker",
        image="example/notifier:1",
        messaging={
            "publishes": [{"name": "notifier.orders"}, {"name": "orders"}],
            "consumes": [{"queue": "spy", "exchange": "orders", "routingKeys": ["#"]}],
        },
    )
    apply(spy, evil)
    obj = wait_ready("spy", evil)
    assert {q["name"] for q in obj["status"]["queues"]} == {f"{evil}.spy", f"{evil}.spy.dlq", f"{evil}.spy.retry.10s"}
    publishes = base64.b64decode(get("secret", "spy-platform", evil)["data"]["RABBITMQ_PUBLISHES"]).decode()
    assert publishes == f"{evil}.notifier.orders,{evil}.orders"  # the names its code is told to use

    url = secret_urls("spy", evil)["RABBITMQ_URL"]
    assert asyncio.run(_attack_broker(url, victim_queue, victim_exchange, f"{evil}.spy")) == []

    # The spy's queue is bound to its own namespace's exchange: the victim's events never reach it.
    assert publish(mq, victim_exchange, "one more")
    eventually(lambda: queued(mq, victim_queue) == ORDERS_EVENTS + 1, timeout=30, what="the victim's queue to count")
    assert queued(mq, f"{evil}.spy") == 0

    delete_under_delete_policy("spy", evil)
    assert mq.get(f"/exchanges/%2F/{victim_exchange}").status_code == 200
    eventually(lambda: queued(mq, victim_queue) == ORDERS_EVENTS + 1, timeout=30, what="the victim's messages")
    assert mq.get(f"/users/{evil}.spy").status_code == 404


def test_another_namespaces_exchange_is_bound_only_once_its_owner_shares_it(ns: str, evil: str, mq: httpx.Client):
    apply(victim_publisher(), ns)
    wait_ready("orders-api", ns)
    reader = psvc(
        "reader",
        type="worker",
        image="example/notifier:1",
        messaging={"consumes": [{"queue": "feed", "exchange": "orders", "exchangeNamespace": ns}]},
    )
    apply(reader, evil)
    obj = cond_is("reader", evil, "QueuesReady", "False", "ExchangeNotShared")
    assert f"belongs to PlatformService {ns}/orders-api" in condition(obj, "QueuesReady")["message"]
    feed = f"{evil}.feed"

    def sources() -> set[str]:
        resp = mq.get(f"/queues/%2F/{quote(feed, safe='')}/bindings")
        return {b["source"] for b in resp.json() if b["source"]} if resp.status_code == 200 else set()

    assert f"{ns}.orders" not in sources()
    assert publish(mq, f"{ns}.orders", "not for you") is False  # nothing bound: routed nowhere

    shared = victim_publisher()
    shared["spec"]["messaging"]["publishes"][0]["sharedWith"] = [evil]
    apply(shared, ns)
    wait_ready("reader", evil)
    assert f"{ns}.orders" in sources()
    assert publish(mq, f"{ns}.orders", "shared")

    # Withdrawn: the binding goes at the consumer's next resync.
    apply(victim_publisher(), ns)
    cond_is("reader", evil, "QueuesReady", "False", "ExchangeNotShared", timeout=RESYNC_SECONDS * 10)
    eventually(lambda: f"{ns}.orders" not in sources(), timeout=30, what="the binding to go")


def test_a_consumes_entry_removed_from_the_spec_receives_nothing_more(ns: str, mq: httpx.Client):
    two = psvc(
        "notifier-worker",
        type="worker",
        image="example/notifier:1",
        messaging={
            "consumes": [
                {"queue": "a", "exchange": "orders", "routingKeys": ["order.*"]},
                {"queue": "b", "exchange": "orders", "routingKeys": ["order.*"]},
            ]
        },
    )
    apply(two, ns)
    wait_ready("notifier-worker", ns)
    assert publish(mq, f"{ns}.orders", "for both")

    one = psvc(
        "notifier-worker",
        type="worker",
        image="example/notifier:1",
        messaging={"consumes": [{"queue": "a", "exchange": "orders", "routingKeys": ["order.*"]}]},
    )
    apply(one, ns)
    obj = wait_ready("notifier-worker", ns)
    assert f"{ns}.b" not in {q["name"] for q in obj["status"]["queues"]}

    def unbound() -> bool:
        resp = mq.get(f"/queues/%2F/{ns}.b/bindings")
        return resp.status_code == 200 and not [b for b in resp.json() if b["source"]]

    eventually(unbound, timeout=30, what=f"{ns}.b unbound")
    assert publish(mq, f"{ns}.orders", "only a")
    # deletionPolicy Retain (the default): the queue stays with what it held, and grows no more.
    eventually(lambda: queued(mq, f"{ns}.b") == 1, timeout=30, what=f"{ns}.b to keep its message")
    eventually(lambda: queued(mq, f"{ns}.a") == 2, timeout=30, what=f"{ns}.a to hold both")
    mq.delete(f"/queues/%2F/{ns}.b")


# --- Ingress ---------------------------------------------------------------------------------------


def test_a_host_of_another_namespace_is_refused_on_every_path(ns: str, evil: str):
    host = f"orders.{ns}.localtest.me"
    apply(psvc("orders-api", type="api", image="example/orders:1", ingress={"host": host, "path": "/"}), ns)
    wait_ready("orders-api", ns)

    apply(psvc("hijack", type="api", image="example/orders:1", ingress={"host": host, "path": "/hijack"}), evil)
    obj = cond_is("hijack", evil, "IngressReady", "False", "HostClaimed")
    assert f"belongs to namespace {ns}" in condition(obj, "IngressReady")["message"]
    assert get("ingress", "hijack", evil) is None
    assert get("ingress", "orders-api", ns) is not None

    # A wildcard over the victim's domain is the same host tree: refused too.
    apply(psvc("wild", type="api", image="example/orders:1", ingress={"host": f"*.{ns}.localtest.me"}), evil)
    cond_is("wild", evil, "IngressReady", "False", "HostClaimed")
    assert get("ingress", "wild", evil) is None


# --- Leftovers -------------------------------------------------------------------------------------


def test_users_of_a_service_whose_finalizer_was_removed_by_hand_stop_working(
    ns: str, mq: httpx.Client, rds: redis.Redis
):
    apply(victim_consumer(), ns)
    wait_ready("notifier-worker", ns)
    urls = secret_urls("notifier-worker", ns)
    user = f"{ns}.notifier-worker"
    assert mq.get(f"/users/{user}").status_code == 200

    kubectl("patch", "psvc", "notifier-worker", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl("delete", "psvc", "notifier-worker", "-n", ns, "--timeout=60s")
    # Removed by the sweep (every SWEEP_SECONDS, at a resync): another service keeps resyncs coming.
    apply(psvc("bystander", type="worker", image="example/notifier:1"), ns)
    eventually(
        lambda: mq.get(f"/users/{user}").status_code == 404 and rds.acl_getuser(user) is None,
        timeout=SWEEP_SECONDS + RESYNC_SECONDS * 10,
        what="the orphaned users to be removed",
    )
    stale = redis.Redis.from_url(urls["REDIS_URL"])
    with pytest.raises(redis.exceptions.AuthenticationError):
        stale.ping()
    with pytest.raises(AMQPConnectionError):  # its user is gone: the login is refused
        asyncio.run(aio_pika.connect(urls["RABBITMQ_URL"]))
    assert mq.get(f"/queues/%2F/{ns}.notifier.orders").status_code == 200  # the data itself stays


def test_a_database_of_the_same_name_is_the_attackers_own_and_the_victims_is_closed_to_it(ns: str, evil: str):
    """The attacker names its data service like the victim's: it gets a database of its own namespace,
    and its own credentials do not open the victim's."""
    import asyncpg

    def data(name: str) -> dict[str, Any]:
        return psvc(name, type="data", image="example/users:1", database={"engine": "postgres", "provision": True})

    def database_url(name: str, namespace: str) -> str:
        secret = get("secret", f"{name}-platform", namespace)
        assert secret is not None
        return reachable(base64.b64decode(secret["data"]["DATABASE_URL"]).decode())

    async def connect_to(url: str, dbname: str | None = None) -> str:
        conn = await asyncpg.connect(url, database=dbname, timeout=10) if dbname else await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    apply(data("users"), ns)
    victim = wait_ready("users", ns)
    apply(data("users"), evil)
    attacker = wait_ready("users", evil)
    victim_db, attacker_db = victim["status"]["database"]["name"], attacker["status"]["database"]["name"]
    assert victim_db != attacker_db and attacker_db.startswith(evil.replace("-", "_") + "_users_")

    evil_url = database_url("users", evil)
    assert asyncio.run(connect_to(evil_url)) == attacker_db
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        asyncio.run(connect_to(evil_url, victim_db))
    # The attacker deleted under Delete takes only its own database with it.
    delete_under_delete_policy("users", evil)
    assert asyncio.run(connect_to(database_url("users", ns))) == victim_db
