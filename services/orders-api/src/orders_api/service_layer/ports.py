"""What the use cases need from the outside world, and how the outside world may fail them.

The adapters raise these exceptions, never their clients' own, so the HTTP layer maps failures to
status codes without knowing httpx, redis or aio-pika.
"""

from __future__ import annotations

from typing import Protocol

from orders_api.domain.events import OrderCreated
from orders_api.domain.model import Customer, Order, TelegramAccount
from orders_api.service_layer.idempotency import Completed, Pending, Record


class UnknownUser(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} does not exist in users-data")
        self.user_id = user_id


class UserRefused(Exception):
    """users-data refused a user as given (e.g. a name it does not accept)."""


class DependencyUnavailable(Exception):
    """A backend the request needs cannot be reached now; the client may retry later."""

    dependency = "dependency"


class UsersDataUnavailable(DependencyUnavailable):
    dependency = "users-data"


class StoreUnavailable(DependencyUnavailable):
    dependency = "redis"


class BrokerUnavailable(DependencyUnavailable):
    dependency = "rabbitmq"


class UserDirectory(Protocol):
    async def exists(self, user_id: str) -> bool: ...

    async def for_telegram(self, telegram_id: int, account: TelegramAccount) -> tuple[Customer, bool]:
        """The user of a Telegram account, made if there is none yet: (user, created)."""


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None: ...
    async def get(self, order_id: str) -> Order | None: ...
    async def remove(self, order_id: str) -> None: ...


class IdempotencyStore(Protocol):
    async def claim(self, key: str, pending: Pending, lock_seconds: int) -> bool:
        """Records `pending` under `key` only if nothing is there yet (SET NX)."""

    async def get(self, key: str) -> Record | None: ...

    async def complete(self, key: str, pending: Pending, completed: Completed, ttl_seconds: int) -> bool:
        """Replaces our own claim by the response to replay; False if the claim is no longer ours."""

    async def release(self, key: str, pending: Pending) -> None:
        """Drops our own claim, so that the client can retry with the same key."""


class EventPublisher(Protocol):
    async def publish(self, event: OrderCreated) -> None: ...
