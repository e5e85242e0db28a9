"""Queues and Redis through the operator: create, credentials, update, drift, outages, deletion.

Runs against the RabbitMQ and Redis the operator manages (PLATFORM_* from hack/backends.sh env).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
import redis
from aiormq.exceptions import ChannelAccessRefused
from e2e_kube import (
    RESYNC_SECONDS,
    Operator,
    apply,
    cond_is,
    condition,
    events,
    eventually,
    get,
    kubectl,
    local_servers,
    psvc,
    reachable,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[2]


def backends(*args: str) -> None:
    subprocess.run([str(ROOT / "hack" / "backends.sh"), *args], check=True, timeout=180, capture_output=True)


def secret_data(name: str, ns: str) -> dict[str, str]:
    secret = get("secret", f"{name}-platform", ns)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    for key in ("RABBITMQ_URL", "REDIS_URL"):  # where this process reaches them (on kind, a forward)
        if key in data:
            data[key] = reachable(data[key])
    return data


def worker(queue: str = "q", exchange: str = "orders", **consume: Any) -> dict[str, Any]:
    """A worker consuming `queue` (its spec's name; on the broker it is <namespace>.<queue>)."""
    return psvc(
        "notifier",
        type="worker",
        image="example/notifier:1",
        messaging={"consumes": [{"queue": queue, "exchange": exchange, "routingKeys": ["order.created"], **consume}]},
    )


def queue_of(ns: str, name: str = "q") -> str:
    """The broker's name of the queue a spec in `ns` names `name`."""
    return f"{ns}.{name}"


def policy_path(ns: str, service: str, queue: str) -> str:
    return "/policies/%2F/" + quote(f"platform/{ns}/{service}/{queue}", safe="")


def test_a_service_of_namespace_amq_is_refused_its_queues_without_a_call_to_the_broker(operator: Any, mq: httpx.Client):
    """Every broker name of namespace amq would begin with amq., which RabbitMQ keeps for itself."""
    ns = "amq"
    kubectl("create", "namespace", ns, check=False)
    try:
        apply(psvc("w", type="worker", image="x", messaging={"consumes": [{"queue": "q", "exchange": "e"}]}), ns)
        obj = cond_is("w", ns, "QueuesReady", "False", "ReservedName")
        assert "amq.q" in condition(obj, "QueuesReady")["message"]
        assert mq.get("/users/amq.w").status_code == 404  # nothing half-made on the broker
        assert mq.get("/queues/%2F/amq.q").status_code == 404
    finally:
        kubectl("delete", "psvc", "w", "-n", ns, "--ignore-not-found", "--timeout=60s", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_create_provisions_queues_users_and_credentials(ns: str, mq: httpx.Client, rds: redis.Redis):
    q = queue_of(ns)
    apply(
        psvc(
            "api",
            type="api",
            image="example/api:1",
            messaging={"publishes": [{"name": "orders"}]},
            redis={"keys": [{"key": "greeting", "value": "hello"}]},
        ),
        ns,
    )
    apply(worker("q", "orders"), ns)
    obj = wait_ready("notifier", ns)
    api = wait_ready("api", ns)

    assert condition(obj, "QueuesReady")["reason"] == "Provisioned"
    assert condition(obj, "CacheReady")["reason"] == "Provisioned"
    assert {x["name"] for x in obj["status"]["queues"]} == {q, f"{q}.dlq", f"{q}.retry.10s"}
    assert obj["status"]["redis"] == {"keyPrefix": f"{ns}:notifier", "user": f"{ns}.notifier"}
    assert mq.get(f"/queues/%2F/{q}").status_code == 200
    assert mq.get(f"/users/{ns}.notifier").status_code == 200
    assert rds.get(f"{ns}:api:greeting") == "hello"
    assert api["status"]["queues"] == []

    data = secret_data("notifier", ns)
    assert data["RABBITMQ_URL"].startswith(f"amqp://{ns}.notifier:")
    assert json.loads(data["RABBITMQ_CONSUMES"])[0]["queue"] == q
    # The Secret's own credentials work, and only for the service's own keys and queue.
    r = redis.Redis.from_url(data["REDIS_URL"], decode_responses=True)
    r.set(f"{ns}:notifier:seen", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.get(f"{ns}:api:greeting")
    r.close()
    asyncio.run(_amqp_checks(data["RABBITMQ_URL"], own=q, foreign=f"{q}-not-mine"))
    # Credentials appear only in the Secret: never in status or events.
    password = data["RABBITMQ_URL"].split(":")[2].split("@")[0]
    assert password not in json.dumps(obj)  # status and annotations of the PlatformService
    assert password not in kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert password not in json.dumps(get("deployment", "notifier", ns))  # env, annotations
    secret_meta = json.dumps(get("secret", "notifier-platform", ns)["metadata"])
    assert password not in secret_meta


async def _amqp_checks(url: str, own: str, foreign: str) -> None:
    conn = await aio_pika.connect(url)
    try:
        queue = await (await conn.channel()).get_queue(own)
        assert await queue.get(fail=False) is None
        with pytest.raises(ChannelAccessRefused):
            await (await conn.channel()).declare_queue(foreign, durable=True)
    finally:
        await conn.close()


def test_passwords_survive_resyncs_and_restarts_and_rotate_on_request(ns: str, operator: Operator):
    apply(worker(), ns)
    wait_ready("notifier", ns)
    before = get("secret", "notifier-platform", ns)

    operator.stop()
    operator.start()
    kubectl("annotate", "psvc", "notifier", "-n", ns, "touch=1")  # a change kopf sees, not a rotation
    time.sleep(RESYNC_SECONDS * 2)
    assert (
        get("secret", "notifier-platform", ns)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )

    old = secret_data("notifier", ns)
    hash_before = get("deployment", "notifier", ns)["spec"]["template"]["metadata"]["annotations"]
    kubectl("annotate", "psvc", "notifier", "-n", ns, "platform.dev/rotate-credentials=2026-11-26")
    eventually(lambda: secret_data("notifier", ns)["RABBITMQ_URL"] != old["RABBITMQ_URL"], what="rotation")
    new = secret_data("notifier", ns)
    assert new["REDIS_URL"] != old["REDIS_URL"]
    eventually(
        lambda: get("deployment", "notifier", ns)["spec"]["template"]["metadata"]["annotations"] != hash_before,
        what="the Deployment to roll",
    )
    cond_is("notifier", ns, "CacheReady", "True")
    stale = redis.Redis.from_url(old["REDIS_URL"])
    with pytest.raises(redis.exceptions.AuthenticationError):
        stale.ping()
    assert redis.Redis.from_url(new["REDIS_URL"]).ping() is True


def test_max_length_change_goes_through_the_policy(ns: str, mq: httpx.Client):
    q = queue_of(ns)
    apply(worker(maxLength=10), ns)
    wait_ready("notifier", ns)
    apply(worker(maxLength=25), ns)

    def policy_has_25() -> bool:
        resp = mq.get(policy_path(ns, "notifier", q))
        return resp.status_code == 200 and resp.json()["definition"].get("max-length") == 25

    eventually(policy_has_25, what="the policy to carry max-length 25")
    wait_ready("notifier", ns)


def test_a_queue_with_foreign_arguments_is_a_condition_with_what_to_do(ns: str, mq: httpx.Client):
    q = queue_of(ns)
    mq.put(f"/queues/%2F/{q}", json={"durable": True, "arguments": {"x-max-length": 3}}).raise_for_status()
    apply(worker(), ns)
    obj = cond_is("notifier", ns, "QueuesReady", "False", "QueueArgumentsConflict")
    assert "Drain and delete the queue" in condition(obj, "QueuesReady")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    mq.delete(f"/queues/%2F/{q}")


def test_queue_and_redis_user_removed_out_of_band_come_back(ns: str, mq: httpx.Client, rds: redis.Redis):
    q = queue_of(ns)
    apply(worker(), ns)
    wait_ready("notifier", ns)
    mq.delete(f"/queues/%2F/{q}").raise_for_status()
    mq.delete(f"/users/{ns}.notifier").raise_for_status()
    rds.acl_deluser(f"{ns}.notifier")
    eventually(lambda: mq.get(f"/queues/%2F/{q}").status_code == 200, timeout=RESYNC_SECONDS * 5, what="queue back")
    eventually(lambda: mq.get(f"/users/{ns}.notifier").status_code == 200, timeout=RESYNC_SECONDS * 5, what="user")
    eventually(lambda: rds.acl_getuser(f"{ns}.notifier"), timeout=RESYNC_SECONDS * 5, what="redis user back")
    # The Secret's password is the one the recreated users accept.
    assert redis.Redis.from_url(secret_data("notifier", ns)["REDIS_URL"]).ping() is True


def test_delete_under_retain_keeps_the_data_outside_and_removes_the_users(ns: str, mq: httpx.Client, rds: redis.Redis):
    q = queue_of(ns)
    apply(worker(), ns)
    wait_ready("notifier", ns)
    rds.set(f"{ns}:notifier:data", "keep")
    kubectl("delete", "psvc", "notifier", "-n", ns, "--timeout=60s")
    assert mq.get(f"/queues/%2F/{q}").status_code == 200
    assert rds.get(f"{ns}:notifier:data") == "keep"
    # Retained data is no working password: the service is gone, and so are its users.
    assert mq.get(f"/users/{ns}.notifier").status_code == 404
    assert rds.acl_getuser(f"{ns}.notifier") is None
    assert any(e["reason"] == "Retained" and "removed broker user" in e["message"] for e in events(ns))


def test_delete_under_delete_removes_all_but_a_queue_holding_messages(ns: str, mq: httpx.Client, rds: redis.Redis):
    q = queue_of(ns)
    spec = worker(exchange="orders")
    spec["spec"]["deletionPolicy"] = "Delete"
    apply(spec, ns)
    wait_ready("notifier", ns)
    rds.set(f"{ns}:notifier:data", "x")
    body = {"properties": {}, "routing_key": "order.created", "payload": "pending", "payload_encoding": "string"}
    assert mq.post(f"/exchanges/%2F/{ns}.orders/publish", json=body).json()["routed"] is True

    kubectl("delete", "psvc", "notifier", "-n", ns, "--timeout=60s")
    assert mq.get(f"/queues/%2F/{q}").status_code == 200  # holds a message: kept
    assert mq.get(f"/queues/%2F/{q}.dlq").status_code == 404
    assert mq.get(f"/queues/%2F/{q}.retry.10s").status_code == 404
    assert mq.get(f"/users/{ns}.notifier").status_code == 404
    assert rds.acl_getuser(f"{ns}.notifier") is None
    assert rds.exists(f"{ns}:notifier:data") == 0
    kept = [e for e in events(ns) if e["reason"] == "QueuesKept"]
    assert kept and q in kept[0]["message"]
    mq.delete(f"/queues/%2F/{q}")


def test_deletion_is_not_held_by_a_resync_waiting_on_redis(ns: str, rds: redis.Redis, operator: Operator):
    """kopf keeps the finalizer until the object's resync timer has exited, and looks again only
    after its polling interval: a resync stuck on a slow Redis must be abandoned, not waited for."""
    apply(worker(), ns)
    wait_ready("notifier", ns)
    mark = operator.log_mark()
    pause = 30.0  # Redis holds every client's commands this long; nothing can lift it sooner
    rds.execute_command("CLIENT", "PAUSE", str(int(pause * 1000)), "ALL")
    lifted = time.monotonic() + pause
    try:
        # A resync begins at most RESYNC_SECONDS after the pause and then waits on Redis for the
        # operator's 5-second timeout: one second later it is surely waiting.
        time.sleep(RESYNC_SECONDS + 1)
        kubectl("delete", "psvc", "notifier", "-n", ns, "--wait=false")
        eventually(
            lambda: get("psvc", "notifier", ns) is None, timeout=20, what="the deletion, with Redis still paused"
        )
    finally:
        time.sleep(max(0.0, lifted - time.monotonic()) + 1)  # the tests after this one need Redis
    assert f"Resync of {ns}/notifier abandoned" in operator.log_since(mark)


@local_servers
def test_rabbitmq_outage_is_reported_and_converges_after_restart(ns: str, mq: httpx.Client):
    q = queue_of(ns)
    apply(worker(), ns)
    wait_ready("notifier", ns)
    backends("stop-rabbitmq")
    try:
        obj = cond_is("notifier", ns, "QueuesReady", "False", "RabbitMQUnavailable", timeout=RESYNC_SECONDS * 6)
        assert "unreachable" in condition(obj, "QueuesReady")["message"]
        # A spec change during the outage is applied to Kubernetes at once and to the broker later.
        apply(worker(maxLength=7), ns)
    finally:
        backends("start-rabbitmq")
    wait_ready("notifier", ns, timeout=120)
    policy = mq.get(policy_path(ns, "notifier", q)).json()
    assert policy["definition"]["max-length"] == 7


@local_servers
def test_redis_outage_is_reported_and_converges_after_restart(ns: str, rds: redis.Redis):
    apply(worker(), ns)
    wait_ready("notifier", ns)
    backends("stop-redis")
    try:
        cond_is("notifier", ns, "CacheReady", "False", "RedisUnavailable", timeout=RESYNC_SECONDS * 6)
        # A spec change during the outage: a key to seed, applied once Redis is back.
        changed = worker()
        changed["spec"]["redis"] = {"keys": [{"key": "mode", "value": "degraded"}]}
        apply(changed, ns)
    finally:
        backends("start-redis")
    # Redis came back empty (no persistence): the user is provisioned again, and the new key seeded.
    wait_ready("notifier", ns, timeout=120)
    assert rds.acl_getuser(f"{ns}.notifier")
    assert rds.get(f"{ns}:notifier:mode") == "degraded"


@local_servers
def test_deletion_blocked_by_a_missing_broker_is_released_by_the_annotation(ns: str):
    spec = worker()
    spec["spec"]["deletionPolicy"] = "Delete"
    apply(spec, ns)
    wait_ready("notifier", ns)
    backends("stop-rabbitmq")
    try:
        kubectl("delete", "psvc", "notifier", "-n", ns, "--wait=false")

        def blocked() -> bool:
            return any(e["reason"] == "CleanupBlocked" for e in events(ns))

        eventually(blocked, timeout=60, what="a CleanupBlocked event")
        assert get("psvc", "notifier", ns) is not None  # held by the finalizer
        kubectl("annotate", "psvc", "notifier", "-n", ns, "platform.dev/skip-external-cleanup=true")
        eventually(lambda: get("psvc", "notifier", ns) is None, timeout=60, what="the deletion to complete")
    finally:
        backends("start-rabbitmq")


def test_a_queue_claimed_by_another_service_is_refused(ns: str, mq: httpx.Client):
    q = queue_of(ns)
    apply(worker(), ns)
    wait_ready("notifier", ns)
    first_user = mq.get(f"/permissions/%2F/{ns}.notifier").json()

    second = worker()
    second["metadata"]["name"] = "thief"
    apply(second, ns)
    obj = cond_is("thief", ns, "QueuesReady", "False", "QueueClaimed")
    assert f"queue {q} belongs to PlatformService {ns}/notifier" in condition(obj, "QueuesReady")["message"]
    assert mq.get(f"/users/{ns}.thief").status_code == 404  # no broker user, no access to the queue
    assert mq.get(f"/permissions/%2F/{ns}.notifier").json() == first_user
    kubectl("delete", "psvc", "thief", "-n", ns, "--timeout=60s")
    assert mq.get(f"/queues/%2F/{q}").status_code == 200  # the holder's queue survives the thief's deletion


@local_servers
def test_redis_restarted_empty_has_every_user_back_within_seconds(ns: str, rds: redis.Redis, operator: Operator):
    apply(worker(), ns)
    apply(psvc("cache-user", type="worker", image="example/notifier:1"), ns)
    wait_ready("notifier", ns)
    wait_ready("cache-user", ns)
    urls = {name: secret_data(name, ns)["REDIS_URL"] for name in ("notifier", "cache-user")}
    mark = operator.log_mark()

    backends("stop-redis")
    backends("start-redis")  # no persistence: it comes back with its admin user only
    started = time.monotonic()

    def users_work() -> bool:
        for name, url in urls.items():
            r = redis.Redis.from_url(url, decode_responses=True)
            try:
                r.set(f"{ns}:{name}:after-restart", "1")
            except (redis.exceptions.AuthenticationError, redis.exceptions.ConnectionError):
                return False
            finally:
                r.close()
        return True

    eventually(users_work, timeout=10, interval=0.2, what="every service's own Redis credentials to work again")
    assert time.monotonic() - started < 10
    eventually(lambda: "Redis has lost its users" in operator.log_since(mark), timeout=10, what="the watch's log line")
    cond_is("notifier", ns, "CacheReady", "True")
    cond_is("cache-user", ns, "CacheReady", "True")
