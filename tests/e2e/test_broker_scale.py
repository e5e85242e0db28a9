"""What makes a thousand services cheap on the broker, shown on a whole cluster: a spec update that
leaves messaging and Redis alone calls neither, and a wiped broker gets every service back at once
(not at each one's next resync).

These run under an operator of their own whose resync interval (10 minutes) is far longer than
the tests: whatever reaches the broker here was not the resync's doing."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from e2e_kube import Operator, OperatorProcess, apply, eventually, get, psvc, wait_ready


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} not set: run through `make test-e2e`", pytrace=False)
    return value


@pytest.fixture
def slow_resync_operator(operator: Operator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    if not isinstance(operator, OperatorProcess):
        pytest.skip("replaces the local operator process for a while")
    operator.stop()
    own = OperatorProcess(
        tmp_path_factory.mktemp("slow-resync") / "operator.log",
        operator.kubeconfig,
        extra_env={
            "PLATFORM_RESYNC_SECONDS": "600",
            "PLATFORM_BROKER_CHECK_SECONDS": "600",
            "PLATFORM_REDIS_CHECK_SECONDS": "600",  # the watch for a Redis that lost its users
        },
    )
    own.start()
    try:
        yield own
    finally:
        own.stop()
        operator.start()


@pytest.fixture
def mq() -> Iterator[httpx.Client]:
    auth = (env("PLATFORM_RABBITMQ_ADMIN_USER"), env("PLATFORM_RABBITMQ_ADMIN_PASSWORD"))
    with httpx.Client(base_url=env("PLATFORM_RABBITMQ_MANAGEMENT_URL") + "/api", auth=auth, timeout=30) as c:
        yield c


def outside_calls(op: OperatorProcess) -> dict[str, float]:
    """Every call the operator made to RabbitMQ and Redis, by system and operation (reads too)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("platform_outside_call_duration_seconds_count{"):
            labels = line.split("{", 1)[1].split("}", 1)[0]
            system = labels.split('system="')[1].split('"')[0]
            operation = labels.split('operation="')[1].split('"')[0]
            if system in ("rabbitmq", "redis"):
                out[f"{system} {operation}"] = float(line.rsplit(" ", 1)[1])
    return out


def worker_spec(ns: str, **consume: object) -> dict[str, object]:
    return {
        "type": "worker",
        "image": "example/w:1",
        "messaging": {"consumes": [{"queue": "jobs", "exchange": "events", "routingKeys": ["#"], **consume}]},
        "redis": {"keys": [{"key": "seed", "value": "1"}]},
    }


def test_an_image_update_calls_neither_broker_nor_redis(
    ns: str, slow_resync_operator: OperatorProcess, mq: httpx.Client
):
    apply(psvc("w", **worker_spec(ns)), ns)
    wait_ready("w", ns)
    time.sleep(2)  # children's status settling: their reconciles visit nothing outside either
    before = outside_calls(slow_resync_operator)

    apply(psvc("w", **{**worker_spec(ns), "image": "example/w:2"}), ns)
    obj = wait_ready("w", ns)
    assert obj["metadata"]["generation"] == 2
    time.sleep(2)
    assert outside_calls(slow_resync_operator) == before

    # A change of the messaging section does reach the broker (the measure sees calls when there are).
    apply(psvc("w", **{**worker_spec(ns, maxLength=7), "image": "example/w:2"}), ns)
    wait_ready("w", ns)
    after = outside_calls(slow_resync_operator)
    assert after.get("rabbitmq PUT", 0) > before.get("rabbitmq PUT", 0)
    policy = mq.get(f"/policies/%2F/{quote(f'platform/{ns}/w/{ns}.jobs', safe='')}").json()
    assert policy["definition"] == {"max-length": 7}


def test_a_wiped_broker_gets_every_service_back_at_once(
    ns: str, slow_resync_operator: OperatorProcess, mq: httpx.Client
):
    for name in ("a", "b"):
        spec = worker_spec(ns)
        spec["messaging"]["consumes"][0]["queue"] = f"{name}.jobs"  # type: ignore[index]
        apply(psvc(name, **spec), ns)
    wait_ready("a", ns)
    wait_ready("b", ns)
    admin = env("PLATFORM_RABBITMQ_ADMIN_USER")
    users = [u["name"] for u in mq.get("/users").json() if u["name"] != admin]

    # A broker restarted empty: no queue, no exchange, no user but the admin.
    mq.delete("/vhosts/%2F").raise_for_status()
    mq.put("/vhosts/%2F").raise_for_status()
    mq.put(f"/permissions/%2F/{admin}", json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    mq.post("/users/bulk-delete", json={"users": users}).raise_for_status()
    wiped = time.monotonic()

    def back() -> bool:
        queues = {q["name"] for q in mq.get("/queues/%2F").json()}
        names = {u["name"] for u in mq.get("/users").json()}
        return {f"{ns}.a.jobs", f"{ns}.b.jobs", f"{ns}.a.jobs.dlq"} <= queues and {f"{ns}.a", f"{ns}.b"} <= names

    eventually(back, timeout=60, what="every service's queues and users declared again")
    assert time.monotonic() - wiped < 60  # the resync (600 s) had no part in it

    body = {"properties": {}, "routing_key": "x", "payload": "after the wipe", "payload_encoding": "string"}
    routed = mq.post(f"/exchanges/%2F/{quote(f'{ns}.events', safe='')}/publish", json=body).json()
    assert routed["routed"] is True
    got = mq.post(f"/queues/%2F/{ns}.b.jobs/get", json={"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert [m["payload"] for m in got.json()] == ["after the wipe"]
    assert get("psvc", "a", ns)["status"]["conditions"]  # still reported, never lost
    log = slow_resync_operator.log_path.read_text(errors="replace")
    assert "marker gone" in log
