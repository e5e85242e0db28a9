"""Fixtures of every service suite under services/: the servers of `hack/backends.sh`, and a
service's users on them as the operator provisions them (operator_testkit). In no image
(services/Dockerfile.dockerignore leaves it out).

    eval "$(hack/backends.sh env)"
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from operator_testkit import AsTheOperator

from platform_contract.testing import BACKEND_VARIABLES, START_BACKENDS, required_env
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore


@pytest.fixture(scope="session")
def backends() -> dict[str, str]:
    """The PLATFORM_* variables of hack/backends.sh (a test that needs them fails, saying how, without them)."""
    env = required_env(BACKEND_VARIABLES, hint=START_BACKENDS)
    env["PLATFORM_RABBITMQ_VHOST"] = os.environ.get("PLATFORM_RABBITMQ_VHOST", "/")
    return env


@pytest.fixture(scope="session")
async def as_the_operator(backends: dict[str, str]) -> AsyncIterator[AsTheOperator]:
    broker = RabbitMQ(
        backends["PLATFORM_RABBITMQ_MANAGEMENT_URL"],
        backends["PLATFORM_RABBITMQ_ADMIN_USER"],
        backends["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        backends["PLATFORM_RABBITMQ_VHOST"],
    )
    store = RedisStore(backends["PLATFORM_REDIS_URL"])
    yield AsTheOperator(backends, broker, store)
    await broker.close()
    await store.close()
