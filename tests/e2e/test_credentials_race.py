"""Two replicas that both act on a new service (as during a peering hand-over) end with one
password per service, and RabbitMQ and Redis hold the one in its Secret.

Two operators run standalone (no peering: both act on every event), scoped to the test's
namespace, with a resync (and broker check) far longer than the test, so that nothing mends a
disagreement before it is looked for. The services are created while both run, several at once."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator

import aio_pika
import pytest
import redis
import yaml
from e2e_kube import Operator, OperatorProcess, apply, get, psvc, reachable, wait_ready

SERVICES = 5
QUIET_SECONDS = 5  # after all are Ready, for the slower replica's reconciles to end
WATCH_SECONDS = 3  # after the liveness endpoint answers, for both replicas' watches to begin


@pytest.fixture
def two_operators(
    ns: str, operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two operators acting at once; the session's operator is stopped meanwhile."""
    if not isinstance(operator, OperatorProcess):
        pytest.skip("replaces the local operator process with two for a while")
    operator.stop()  # its resync (seconds) would mend what the test looks for
    env = {
        "PLATFORM_STANDALONE": "true",
        "PLATFORM_NAMESPACES": ns,  # the other tests' namespaces are none of theirs
        "PLATFORM_RESYNC_SECONDS": "600",
        "PLATFORM_BROKER_CHECK_SECONDS": "600",
        "PLATFORM_SWEEP_SECONDS": "0",
    }
    workdir = tmp_path_factory.mktemp("two-operators")
    # The admin's kubeconfig: scoped to a namespace, kopf lists namespaces first, which the chart's
    # ServiceAccount may not (it waits a minute before it gives up). RBAC is not what this is about.
    ops = tuple(OperatorProcess(workdir / f"{replica}.log", extra_env=env) for replica in "ab")
    try:
        for op in ops:
            op.start()
        time.sleep(WATCH_SECONDS)
        yield ops[0], ops[1]
    finally:
        for op in ops:
            op.stop()
        operator.start()


def service(name: str) -> dict[str, object]:
    return psvc(
        name,
        type="worker",
        image="example/w:1",
        messaging={"consumes": [{"queue": f"{name}-jobs", "exchange": "events"}]},
        redis={"keys": [{"key": "seed", "value": "1"}]},
    )


def urls(name: str, ns: str) -> tuple[str, str]:
    secret = get("secret", f"{name}-platform", ns)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return reachable(data["RABBITMQ_URL"]), reachable(data["REDIS_URL"])


async def rabbitmq_accepts(url: str) -> str:
    try:
        conn = await aio_pika.connect(url, timeout=10)
    except aio_pika.exceptions.ProbableAuthenticationError as exc:
        return f"refused: {exc}"
    await conn.close()
    return "ok"


def redis_accepts(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        return "ok" if client.ping() else "no PONG"
    except redis.exceptions.AuthenticationError as exc:
        return f"refused: {exc}"
    finally:
        client.close()


def test_two_replicas_creating_services_at_once_agree_on_one_password(
    ns: str, two_operators: tuple[OperatorProcess, OperatorProcess]
):
    names = [f"race-{i}" for i in range(SERVICES)]
    apply(yaml.safe_dump_all([service(name) for name in names]), ns)  # one apply: both see each at once
    for name in names:
        wait_ready(name, ns, timeout=240)
    time.sleep(QUIET_SECONDS)

    for op in two_operators:
        assert f"{ns}/race-" in op.log_since(0), f"a replica did not act: the race was not run\n{op.log_tail()}"
    verdicts = {}
    for name in names:
        rabbitmq_url, redis_url = urls(name, ns)
        verdicts[name] = (asyncio.run(rabbitmq_accepts(rabbitmq_url)), redis_accepts(redis_url))
    assert verdicts == {name: ("ok", "ok") for name in names}, "the Secret and RabbitMQ/Redis disagree"
