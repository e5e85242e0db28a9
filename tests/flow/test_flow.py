"""The reference services together, as local processes, on real PostgreSQL, RabbitMQ and Redis.

Each service gets exactly what the operator would give it: its queues, broker user and Redis user
are provisioned with the operator's own adapters from the PlatformService in samples/, and its
environment is the operator's Secret (builders.secret_settings) plus the Deployment's variables
(DATA_*_URL, DATABASE_URL). Then: a user is created in users-data, an order is POSTed to
orders-api, the event reaches notifier-worker, which notifies exactly once even when the message
is delivered again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from platform_contract.testing import BACKEND_VARIABLES, free_port, required_env
from platform_operator import builders, cache, messaging
from platform_operator.credentials import new_password
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("PLATFORM_POSTGRES_DSN", *BACKEND_VARIABLES)


def env() -> dict[str, str]:
    return required_env(NEEDED, hint="run through `make test-e2e`")


def sample(name: str, namespace: str) -> PlatformService:
    body = yaml.safe_load((ROOT / "samples" / f"{name}.yaml").read_text())
    body["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
    return PlatformService.from_body(body)


class Process:
    def __init__(self, module: str, environ: dict[str, str], port: int, log: Path) -> None:
        self.port, self.log = port, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module], env=environ, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.log.name} exited:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.log.name} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    e = env()
    ns = f"flow{uuid.uuid4().hex[:6]}"
    workdir = tmp_path_factory.mktemp("flow")
    services = {n: sample(n, ns) for n in ("users-data", "orders-api", "notifier-worker")}
    ports = {n: free_port() for n in services}
    database = f"flow_{uuid.uuid4().hex[:8]}"
    admin_dsn = e["PLATFORM_POSTGRES_DSN"]

    async def provision() -> dict[str, dict[str, str]]:
        conn = await asyncpg.connect(admin_dsn.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'CREATE DATABASE "{database}"')
        await conn.close()
        rabbit = RabbitMQ(e["PLATFORM_RABBITMQ_MANAGEMENT_URL"], e["PLATFORM_RABBITMQ_ADMIN_USER"],
                          e["PLATFORM_RABBITMQ_ADMIN_PASSWORD"], "/")  # fmt: skip
        store = RedisStore(e["PLATFORM_REDIS_URL"])
        envs = {}
        # Publishers first: the consumer's binding needs the exchange, as in a cluster.
        for name in ("orders-api", "notifier-worker", "users-data"):
            svc = services[name]
            topology, plan = messaging.plan(svc), cache.plan(svc)
            mq_password, redis_password = new_password(), new_password()
            mq_url = ""
            if not topology.empty:
                result = await rabbit.provision(topology, mq_password)
                assert result.conflicts == []
                mq_url = messaging.amqp_url(topology.user, mq_password, e["PLATFORM_RABBITMQ_SERVICE_HOST"],
                                            int(e["PLATFORM_RABBITMQ_SERVICE_PORT"]), "/")  # fmt: skip
            await store.ensure_user(plan, redis_password)
            redis_url = cache.redis_url(plan.user, redis_password, e["PLATFORM_REDIS_SERVICE_HOST"],
                                        int(e["PLATFORM_REDIS_SERVICE_PORT"]), 0)  # fmt: skip
            settings = builders.secret_settings(svc, rabbitmq_url=mq_url, redis_url=redis_url)
            # The Deployment's own variables, with in-cluster addresses replaced by local ones.
            for dep in svc.spec.depends_on:
                settings[builders.env_name_for_data(dep)] = f"http://127.0.0.1:{ports[dep]}"
            if svc.spec.database is not None:
                settings["DATABASE_URL"] = admin_dsn.rsplit("/", 1)[0] + f"/{database}"
                settings["DATABASE_ENGINE"] = svc.spec.database.engine
            for var in svc.spec.env:
                settings.setdefault(var["name"], var.get("value", ""))
            envs[name] = settings
        await rabbit.close()
        await store.close()
        return envs

    envs = asyncio.run(provision())
    base = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    procs = {}
    try:
        for name, module in (("users-data", "users_data"), ("orders-api", "orders_api"),
                             ("notifier-worker", "notifier_worker")):  # fmt: skip
            port = str(ports[name])
            environ = {**base, **envs[name], "HTTP_HOST": "127.0.0.1", "HTTP_PORT": port,
                       "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": port}  # fmt: skip
            procs[name] = Process(module, environ, ports[name], workdir / f"{name}.log")
        for p in procs.values():
            p.wait_ready()
        yield {"ns": ns, "services": services, "ports": ports, "procs": procs, "env": e, "envs": envs}
    finally:
        codes = {name: p.stop() for name, p in procs.items()}
        for name, p in procs.items():
            if codes[name] not in (0, -15):
                print(f"--- {name} exited {codes[name]}:\n{p.log.read_text()[-3000:]}")

        async def drop() -> None:
            conn = await asyncpg.connect(admin_dsn.replace("postgresql+asyncpg://", "postgresql://"))
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await conn.close()
            # Each run's names are under its own namespace; removed all the same, so that runs leave
            # no queues behind to grow.
            rabbit = RabbitMQ(e["PLATFORM_RABBITMQ_MANAGEMENT_URL"], e["PLATFORM_RABBITMQ_ADMIN_USER"],
                              e["PLATFORM_RABBITMQ_ADMIN_PASSWORD"], "/")  # fmt: skip
            for svc in services.values():
                await rabbit.deprovision(messaging.plan(svc), [], force=True)
            await rabbit.close()

        asyncio.run(drop())


@pytest.fixture
async def admin_redis() -> AsyncIterator[aioredis.Redis]:
    r = aioredis.from_url(env()["PLATFORM_REDIS_URL"], decode_responses=True)
    yield r
    await r.aclose()


async def wait_for(fn: Any, timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


async def test_an_order_flows_from_the_api_through_the_event_to_exactly_one_notification(
    platform: dict[str, Any], admin_redis: aioredis.Redis
):
    ports, services = platform["ports"], platform["services"]
    worker_prefix = services["notifier-worker"].key_prefix
    async with httpx.AsyncClient(timeout=10) as http:
        user = await http.post(f"http://127.0.0.1:{ports['users-data']}/users",
                               json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Ada"})  # fmt: skip
        assert user.status_code == 201, user.text
        user_id = user.json()["id"]

        key = uuid.uuid4().hex
        order_body = {"user_id": user_id, "item": "book", "quantity": 2}
        headers = {"Idempotency-Key": key, "X-Request-ID": "flow-request-1"}
        first = await http.post(f"http://127.0.0.1:{ports['orders-api']}/orders", json=order_body, headers=headers)
        assert first.status_code == 201, first.text
        order_id = first.json()["id"]
        again = await http.post(f"http://127.0.0.1:{ports['orders-api']}/orders", json=order_body, headers=headers)
        assert again.json() == first.json()  # idempotent: same answer, no second event

    notification_key = f"{worker_prefix}:notifications:{order_id}"
    counter_key = f"{worker_prefix}:stats:notifications_sent"
    notification = await wait_for(lambda: admin_redis.get(notification_key), what="the notification")
    assert order_id in notification and user_id in notification

    # The broker delivers the event again (same message id): still one notification.
    e = platform["env"]
    auth = (e["PLATFORM_RABBITMQ_ADMIN_USER"], e["PLATFORM_RABBITMQ_ADMIN_PASSWORD"])
    async with httpx.AsyncClient(base_url=e["PLATFORM_RABBITMQ_MANAGEMENT_URL"] + "/api", auth=auth) as mq:
        event = {"order_id": order_id, "user_id": user_id, "item": "book", "quantity": 2,
                 "created_at": "2026-11-26T00:00:00Z", "schema_version": 1}  # fmt: skip
        exchange = messaging.broker_name(services["orders-api"].namespace, "orders")
        resp = await mq.post(f"/exchanges/%2F/{exchange}/publish", json={
            "properties": {"message_id": order_id, "content_type": "application/json", "delivery_mode": 2},
            "routing_key": "order.created", "payload": json.dumps(event), "payload_encoding": "string"})  # fmt: skip
        assert resp.json()["routed"] is True
        worker = services["notifier-worker"]
        queue = messaging.broker_name(worker.namespace, worker.spec.messaging.consumes[0].queue)
        await wait_for(lambda: _queue_drained(mq, queue), what="the redelivered message to be consumed")
    assert await admin_redis.get(counter_key) == "1"

    # The request id travelled from the HTTP call into the worker's log through the message.
    log = platform["procs"]["notifier-worker"].log.read_text()
    assert "flow-request-1" in log


async def _queue_drained(mq: httpx.AsyncClient, queue: str) -> bool:
    stats = (await mq.get(f"/queues/%2F/{queue}")).json()
    return (
        stats.get("messages", 1) == 0
        and stats.get("messages_unacknowledged", 1) == 0
        and stats.get("message_stats", {}).get("ack", 0) >= 2
    )


async def test_every_service_key_stays_under_its_own_prefix(platform: dict[str, Any], admin_redis: aioredis.Redis):
    ns = platform["ns"]
    keys = [k async for k in admin_redis.scan_iter(match=f"{ns}:*")]
    assert keys, "the flow wrote no key"
    prefixes = {s.key_prefix for s in platform["services"].values()}
    assert all(any(k.startswith(p + ":") for p in prefixes) for k in keys), keys
