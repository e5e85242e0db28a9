"""A service's RabbitMQ and Redis users provisioned on the servers of `hack/backends.sh` with the
operator's own adapters, as the operator does it: for the service suites under services/, whose
conftest (services/conftest.py) gives it as the fixture `as_the_operator`. In no image
(services/Dockerfile.dockerignore leaves it out)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from platform_operator import builders, cache, messaging
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore


@dataclass
class AsTheOperator:
    """Provisions a PlatformService's broker user, exchanges and queues and its Redis ACL user."""

    backends: dict[str, str]
    broker: RabbitMQ
    store: RedisStore

    async def provision(self, svc: PlatformService) -> dict[str, str]:
        """What the operator puts in the service's credentials Secret (`builders.secret_settings`)."""
        b = self.backends
        topology, plan = messaging.plan(svc), cache.plan(svc)
        rabbit_password, redis_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        provisioned = await self.broker.provision(topology, rabbit_password)
        assert not provisioned.conflicts, provisioned.conflicts
        await self.store.ensure_user(plan, redis_password)
        host, port = b["PLATFORM_RABBITMQ_SERVICE_HOST"], int(b["PLATFORM_RABBITMQ_SERVICE_PORT"])
        rabbitmq_url = messaging.amqp_url(topology.user, rabbit_password, host, port, b["PLATFORM_RABBITMQ_VHOST"])
        host, port = b["PLATFORM_REDIS_SERVICE_HOST"], int(b["PLATFORM_REDIS_SERVICE_PORT"])
        redis_url = cache.redis_url(plan.user, redis_password, host, port, 0)
        return builders.secret_settings(svc, rabbitmq_url=rabbitmq_url, redis_url=redis_url)

    async def deprovision(self, svc: PlatformService) -> None:
        """Removes what provision made, and the service's keys."""
        topology, plan = messaging.plan(svc), cache.plan(svc)
        await self.broker.deprovision(topology, [e.name for e in topology.exchanges], force=True)
        await self.store.delete_keys(plan.prefix)
        await self.store.delete_user(plan.user)
