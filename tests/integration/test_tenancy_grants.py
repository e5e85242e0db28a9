"""What a service's own credentials allow and refuse, against the real RabbitMQ and Redis.

Two namespaces side by side: `victim` runs a publisher and a consumer as the samples do, `attacker`
asks for the same names in its own specs. Every attempt is made with the attacker's own
credentials, as its pods would hold them, and the victim's messages and keys are checked after.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import httpx
import redis.asyncio as aioredis
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity
from it_helpers import make_service
from redis.exceptions import NoPermissionError, ResponseError
from test_rabbitmq_adapter import _get, amqp, get_json, publish
from test_redis_adapter import connect_as

from platform_operator import cache, messaging, sweep
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore


def namespaces() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"victim-{tag}", f"attacker-{tag}"


def victim_services(ns: str) -> tuple[PlatformService, PlatformService]:
    publisher = make_service(
        "orders-api", ns, type="api", image="x", messaging={"publishes": [{"name": "orders", "type": "topic"}]}
    )
    consumer = make_service(
        "notifier-worker",
        ns,
        type="worker",
        image="x",
        messaging={"consumes": [{"queue": "notifier.orders", "exchange": "orders", "routingKeys": ["order.*"]}]},
    )
    return publisher, consumer


def reader_of_orders(owner_ns: str, ns: str) -> PlatformService:
    """A worker of `ns` whose queue "feed" binds to the "orders" exchange of `owner_ns`."""
    return make_service(
        "reader",
        ns,
        type="worker",
        image="x",
        messaging={"consumes": [{"queue": "feed", "exchange": "orders", "exchangeNamespace": owner_ns}]},
    )


def attacker_service(ns: str) -> PlatformService:
    """Asks, in its own namespace, for every name the victim uses."""
    return make_service(
        "spy",
        ns,
        type="worker",
        image="x",
        messaging={
            "publishes": [{"name": "notifier.orders"}, {"name": "orders"}],
            "consumes": [{"queue": "spy", "exchange": "orders", "routingKeys": ["#"]}],
        },
    )


async def refused(conn: aio_pika.abc.AbstractRobustConnection, action) -> bool:  # type: ignore[no-untyped-def]
    """Runs action on a fresh channel; True when the broker refused it (the channel is closed)."""
    channel = await conn.channel()
    try:
        await action(channel)
    except (ChannelAccessRefused, ChannelNotFoundEntity):
        return True
    return False


async def test_another_namespaces_names_are_out_of_reach_of_a_services_own_credentials(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    victim_ns, attacker_ns = namespaces()
    publisher, consumer = victim_services(victim_ns)
    attacker = attacker_service(attacker_ns)
    for svc, pw in ((publisher, "pw-pub"), (consumer, "pw-con"), (attacker, "pw-evil")):
        result = await broker.provision(messaging.plan(svc), pw)
        assert result.conflicts == [] and result.missing == []

    victim_exchange = messaging.broker_name(victim_ns, "orders")
    victim_queue = messaging.broker_name(victim_ns, "notifier.orders")
    for i in range(5):
        await publish(api, victim_exchange, "order.created", f"order {i}")

    # The attacker's own names are its namespace's, whatever its spec said.
    attacker_topo = messaging.plan(attacker)
    assert {e.name for e in attacker_topo.exchanges} >= {f"{attacker_ns}.orders", f"{attacker_ns}.notifier.orders"}
    assert all(messaging.owner_namespace(q) == attacker_ns for q in attacker_topo.queues_in_status)

    conn = await aio_pika.connect_robust(amqp(messaging.user_name(attacker), "pw-evil"))
    try:

        async def delete_victim_queue(ch):  # type: ignore[no-untyped-def]
            await ch.queue_delete(victim_queue)

        async def delete_victim_exchange(ch):  # type: ignore[no-untyped-def]
            await ch.exchange_delete(victim_exchange)

        async def read_victim_queue(ch):  # type: ignore[no-untyped-def]
            q = await ch.get_queue(victim_queue, ensure=False)
            await q.get(fail=False)

        async def publish_to_victim(ch):  # type: ignore[no-untyped-def]
            ex = await ch.get_exchange(victim_exchange, ensure=False)
            await ex.publish(aio_pika.Message(b"forged"), "order.created")
            await ch.get_exchange(victim_exchange)  # a round trip: the refusal arrives before it

        async def publish_straight_into_victim_queue(ch):  # type: ignore[no-untyped-def]
            await ch.default_exchange.publish(aio_pika.Message(b"forged"), victim_queue)
            await ch.get_queue(f"{attacker_ns}.spy")

        async def bind_own_queue_to_victim_exchange(ch):  # type: ignore[no-untyped-def]
            q = await ch.get_queue(f"{attacker_ns}.spy")
            await q.bind(victim_exchange, "#")

        async def redeclare_victim_queue(ch):  # type: ignore[no-untyped-def]
            await ch.declare_queue(victim_queue, durable=True, arguments={"x-max-length": 1})

        async def delete_own_queue(ch):  # type: ignore[no-untyped-def]
            await ch.queue_delete(f"{attacker_ns}.spy")

        async def declare_new_queue(ch):  # type: ignore[no-untyped-def]
            await ch.declare_queue(f"{attacker_ns}.extra", durable=True)

        for action in (
            delete_victim_queue,
            delete_victim_exchange,
            read_victim_queue,
            publish_to_victim,
            publish_straight_into_victim_queue,
            bind_own_queue_to_victim_exchange,
            redeclare_victim_queue,
            delete_own_queue,
            declare_new_queue,
        ):
            assert await refused(conn, action), f"{action.__name__} was allowed"

        # What it is granted works: publish to its own exchange, read its own queue.
        channel = await conn.channel()
        own = await channel.get_exchange(f"{attacker_ns}.orders")
        await own.publish(aio_pika.Message(b"mine"), "order.created")
        assert (await _get(await channel.get_queue(f"{attacker_ns}.spy"))).body == b"mine"
    finally:
        await conn.close()

    # The victim's queue still holds its five messages, and nothing forged reached it.
    bodies = []
    conn = await aio_pika.connect(amqp(messaging.user_name(consumer), "pw-con"))
    try:
        queue = await (await conn.channel()).get_queue(victim_queue)
        while (msg := await queue.get(fail=False)) is not None:
            bodies.append(msg.body)
            await msg.ack()
    finally:
        await conn.close()
    assert bodies == [f"order {i}".encode() for i in range(5)]


async def test_a_foreign_exchange_is_bound_only_as_shared_and_unbound_when_unshared(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    owner_ns, other_ns = namespaces()
    publisher, _ = victim_services(owner_ns)
    await broker.provision(messaging.plan(publisher), "pw-pub")
    reader = reader_of_orders(owner_ns, other_ns)
    exchange, queue = messaging.broker_name(owner_ns, "orders"), messaging.broker_name(other_ns, "feed")

    async def sources() -> set[str]:
        return {b["source"] for b in await get_json(api, f"/queues/%2F/{queue}/bindings") if b["source"]}

    not_shared = messaging.plan(reader, unshared=frozenset({exchange}))
    assert (await broker.provision(not_shared, "pw")).conflicts == []
    assert exchange not in await sources()
    assert exchange not in {e.name for e in not_shared.exchanges}  # never declared by the reader

    shared = messaging.plan(reader)
    await broker.provision(shared, "pw")
    assert exchange in await sources()
    await publish(api, exchange, "order.created", "shared order")

    # Sharing withdrawn: the binding goes, what was queued stays the reader's.
    result = await broker.provision(not_shared, "pw")
    assert any(w.startswith(f"unbind {exchange}->{queue}") for w in result.written)
    assert exchange not in await sources()
    assert (await get_json(api, f"/exchanges/%2F/{exchange}"))["name"] == exchange  # the owner's, untouched


async def test_a_shared_exchange_not_declared_yet_is_waited_for(broker: RabbitMQ):
    owner_ns, other_ns = namespaces()
    reader = reader_of_orders(owner_ns, other_ns)
    result = await broker.provision(messaging.plan(reader), "pw")
    assert result.missing == [messaging.broker_name(owner_ns, "orders")]


async def test_an_exchange_of_another_type_is_reported_even_when_topic_is_wanted(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    ns, _ = namespaces()
    svc = make_service("pub", ns, type="api", image="x", messaging={"publishes": [{"name": "events"}]})
    name = messaging.broker_name(ns, "events")
    (await api.put(f"/exchanges/%2F/{name}", json={"type": "fanout", "durable": True})).raise_for_status()
    result = await broker.provision(messaging.plan(svc), "pw")
    assert result.conflicts and f"exchange {name} exists with type fanout, not topic" in result.conflicts[0]


async def test_a_removed_consumes_entry_is_unbound_and_kept_with_its_messages_or_deleted_when_empty(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    ns, _ = namespaces()
    publisher, consumer = victim_services(ns)
    await broker.provision(messaging.plan(publisher), "pw-pub")
    await broker.provision(messaging.plan(consumer), "pw-con")
    exchange, queue = messaging.broker_name(ns, "orders"), messaging.broker_name(ns, "notifier.orders")
    await publish(api, exchange, "order.created", "kept")

    released = await broker.release_queues([queue], delete=True, force=False)
    assert f"queue {queue} (unbound, not empty)" in released.kept
    bindings = [b for b in await get_json(api, f"/queues/%2F/{queue}/bindings") if b["source"]]
    assert bindings == []
    body = {"properties": {}, "routing_key": "order.created", "payload": "late", "payload_encoding": "string"}
    assert (await api.post(f"/exchanges/%2F/{exchange}/publish", json=body)).json()["routed"] is False
    for _ in range(40):  # the management API refreshes its counters every few seconds
        held = (await get_json(api, f"/queues/%2F/{queue}")).get("messages")
        if held == 1:
            break
        await asyncio.sleep(0.5)
    assert held == 1

    dlq = messaging.dlq_name(queue)
    released = await broker.release_queues([dlq], delete=True, force=False)
    assert f"queue {dlq}" in released.deleted
    assert (await api.get(f"/queues/%2F/{dlq}")).status_code == 404


async def test_the_sweep_removes_only_tagged_users_whose_service_is_gone(broker: RabbitMQ, api: httpx.AsyncClient):
    ns, _ = namespaces()
    gone, alive = victim_services(ns)
    await broker.provision(messaging.plan(gone), "pw-gone")
    await broker.provision(messaging.plan(alive), "pw-alive")
    by_hand = f"{ns}.by-hand"  # the same shape, made by a person: not the operator's
    (await api.put(f"/users/{by_hand}", json={"password": "x", "tags": ""})).raise_for_status()

    users = await broker.service_users()
    assert {messaging.user_name(gone), messaging.user_name(alive)} <= set(users) and by_hand not in users

    job = sweep.UserSweep(broker, None, interval=1, namespaces=(ns,))  # other tests' users are not ours
    removed = await job.run(lambda namespace, name: (namespace, name) == (ns, alive.name))
    assert f"rabbitmq {messaging.user_name(gone)}" in removed
    assert (await api.get(f"/users/{messaging.user_name(gone)}")).status_code == 404
    assert (await api.get(f"/users/{messaging.user_name(alive)}")).status_code == 200
    assert (await api.get(f"/users/{by_hand}")).status_code == 200
    await api.delete(f"/users/{by_hand}")


# --- Redis -----------------------------------------------------------------------------------------


async def test_a_prefix_asked_for_in_another_namespace_stays_in_that_namespace():
    victim_ns, attacker_ns = namespaces()
    victim = make_service("orders-api", victim_ns, type="api", image="x")
    attacker = make_service(
        "spy", attacker_ns, type="worker", image="x", redis={"keyPrefix": f"{victim_ns}:orders-api"}
    )
    assert victim.key_prefix == f"{victim_ns}:orders-api"
    assert attacker.key_prefix == f"{attacker_ns}:{victim_ns}:orders-api"
    assert not attacker.key_prefix.startswith(f"{victim_ns}:")


async def test_a_tenant_user_reaches_nothing_beyond_its_prefix(store: RedisStore, admin: aioredis.Redis):
    victim_ns, attacker_ns = namespaces()
    victim = cache.plan(make_service("orders-api", victim_ns, type="api", image="x"))
    attacker = cache.plan(make_service("spy", attacker_ns, type="worker", image="x"))
    await store.ensure_user(victim, "pw-victim")
    await store.ensure_user(attacker, "pw-attacker")
    await admin.set(f"{victim.prefix}:idem:1", "victim's")
    await admin.function_load(
        "#!lua name=victimlib\nredis.register_function('victim_ping', function() return 'pong' end)", replace=True
    )

    r = connect_as(attacker.user, "pw-attacker")
    try:
        # Its own keys, scripts and channels work: what the reference services do.
        await r.set(f"{attacker.prefix}:k", "v")
        assert await r.get(f"{attacker.prefix}:k") == "v"
        assert await r.eval("return redis.call('GET', KEYS[1])", 1, f"{attacker.prefix}:k") == "v"
        assert await r.publish(f"{attacker.prefix}:events", "hi") == 0

        refused_calls = {
            "GET another tenant's key": lambda: r.get(f"{victim.prefix}:idem:1"),
            "SET another tenant's key": lambda: r.set(f"{victim.prefix}:idem:1", "overwritten"),
            "EVAL on another tenant's key": lambda: r.eval(
                "return redis.call('GET', KEYS[1])", 1, f"{victim.prefix}:idem:1"
            ),
            "SCAN": lambda: r.scan(0),
            "KEYS": lambda: r.keys("*"),
            "RANDOMKEY": lambda: r.randomkey(),
            "DBSIZE": lambda: r.dbsize(),
            "PUBSUB CHANNELS": lambda: r.pubsub_channels(),
            "PUBLISH on another tenant's channel": lambda: r.publish(f"{victim.prefix}:events", "forged"),
            "FUNCTION FLUSH": lambda: r.function_flush(),
            "FUNCTION LIST": lambda: r.function_list(),
            "FCALL": lambda: r.fcall("victim_ping", 0),
            "SCRIPT FLUSH": lambda: r.script_flush(),
            "SCRIPT KILL": lambda: r.script_kill(),
            "FLUSHALL": lambda: r.flushall(),
            "FLUSHDB": lambda: r.flushdb(),
            "CONFIG GET": lambda: r.config_get("*"),
            "CLIENT LIST": lambda: r.client_list(),
            "SORT ... GET another tenant's keys": lambda: r.sort(f"{attacker.prefix}:list", get=f"{victim.prefix}:*"),
        }
        allowed = []
        for what, call in refused_calls.items():
            try:
                await call()
            except NoPermissionError:
                continue
            except ResponseError as exc:
                if "NOPERM" in str(exc) or "no permissions" in str(exc).lower():
                    continue
                raise
            allowed.append(what)
        assert allowed == []
    finally:
        await r.aclose()

    assert await admin.get(f"{victim.prefix}:idem:1") == "victim's"
    assert await admin.fcall("victim_ping", 0) == "pong"
    await admin.function_delete("victimlib")


async def test_deletion_of_a_prefix_unlinks_only_its_own_keys_not_a_longer_sibling(
    store: RedisStore, admin: aioredis.Redis
):
    ns, _ = namespaces()
    await admin.set(f"{ns}:orders:k", "mine")
    await admin.set(f"{ns}:orders-api:k", "sibling's")
    await admin.set(f"{ns}:ordersx", "sibling's too")
    assert await store.delete_keys(f"{ns}:orders") == 1
    assert await admin.get(f"{ns}:orders-api:k") == "sibling's"
    assert await admin.get(f"{ns}:ordersx") == "sibling's too"
    await admin.delete(f"{ns}:orders-api:k", f"{ns}:ordersx")


async def test_the_sweep_removes_only_service_shaped_redis_users_whose_service_is_gone(
    store: RedisStore, admin: aioredis.Redis
):
    ns, _ = namespaces()
    gone = cache.plan(make_service("gone", ns, type="worker", image="x"))
    alive = cache.plan(make_service("alive", ns, type="worker", image="x"))
    await store.ensure_user(gone, "pw")
    await store.ensure_user(alive, "pw")
    by_hand = f"{ns}.by-hand"
    await admin.acl_setuser(by_hand, enabled=True, nopass=True, keys=["*"], commands=["+get"])
    users = await store.service_users()
    assert {gone.user, alive.user} <= set(users) and by_hand not in users and "default" not in users

    removed = await sweep.UserSweep(None, store, interval=1, namespaces=(ns,)).run(lambda _ns, name: name == "alive")
    assert f"redis {gone.user}" in removed
    assert await store.get_user(gone.user) is None
    assert await store.get_user(alive.user) is not None
    assert await store.get_user(by_hand) is not None
    await admin.acl_deluser(by_hand, alive.user)


async def test_a_removed_consumes_entry_under_delete_takes_its_dead_letter_and_retry_exchanges(
    broker: RabbitMQ, api: httpx.AsyncClient
):
    ns, _ = namespaces()
    _, consumer = victim_services(ns)
    topo = messaging.plan(consumer)
    await broker.provision(topo, "pw-con")
    queue = messaging.broker_name(ns, "notifier.orders")

    released = await broker.release_queues(topo.queues_in_status, delete=True, force=False)
    assert {f"queue {q}" for q in topo.queues_in_status} <= set(released.deleted)
    for exchange in (messaging.dlx_name(queue), messaging.retry_name(queue)):
        assert f"exchange {exchange}" in released.deleted
        assert (await api.get(f"/exchanges/%2F/{exchange}")).status_code == 404
    # The exchange it consumed from belongs to the publishers of its namespace: untouched.
    assert (await api.get(f"/exchanges/%2F/{messaging.broker_name(ns, 'orders')}")).status_code == 200
