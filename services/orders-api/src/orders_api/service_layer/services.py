"""The use cases of orders-api."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from http import HTTPStatus

from orders_api.domain.events import OrderCreated
from orders_api.domain.model import CreateOrder, Customer, Order, TelegramAccount
from orders_api.service_layer import idempotency
from orders_api.service_layer.ports import (
    DependencyUnavailable,
    EventPublisher,
    IdempotencyStore,
    OrderRepository,
    UnknownUser,
    UserDirectory,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, object]
    replayed: bool


@dataclass
class OrderService:
    users: UserDirectory
    orders: OrderRepository
    idempotency: IdempotencyStore
    events: EventPublisher
    idempotency_ttl_seconds: int
    idempotency_lock_seconds: int

    async def create(self, command: CreateOrder, key: str) -> Outcome:
        """Places the order once per Idempotency-Key: a repeat replays the first response and
        publishes nothing. A failed attempt frees the key, so the client can retry with it."""
        pending = idempotency.Pending(idempotency.fingerprint(command))
        if not await self.idempotency.claim(key, pending, self.idempotency_lock_seconds):
            existing = await self.idempotency.get(key)
            if existing is not None:
                done = idempotency.replay(existing, pending.fingerprint)
                return Outcome(done.status_code, done.body, replayed=True)
            # The claim expired between our SET NX and GET: this request may take the key.
            if not await self.idempotency.claim(key, pending, self.idempotency_lock_seconds):
                raise idempotency.IdempotencyKeyInUse("a request with this Idempotency-Key is being processed")
        try:
            order = await self._place(command)
        except BaseException:
            # Best effort: if Redis itself failed, the claim expires with its lock anyway.
            with contextlib.suppress(DependencyUnavailable):
                await self.idempotency.release(key, pending)
            raise
        body = order.model_dump(mode="json")
        completed = idempotency.Completed(pending.fingerprint, HTTPStatus.CREATED, body)
        if not await self.idempotency.complete(key, pending, completed, self.idempotency_ttl_seconds):
            # Only when this request outlived its lock and another one took the key: both placed an
            # order. Loud, because the lock (IDEMPOTENCY_LOCK_SECONDS) is then too short.
            log.warning(
                "idempotency lock expired before order %s was recorded; raise IDEMPOTENCY_LOCK_SECONDS", order.id
            )
        return Outcome(HTTPStatus.CREATED, body, replayed=False)

    async def _place(self, command: CreateOrder) -> Order:
        if not await self.users.exists(command.user_id):
            raise UnknownUser(command.user_id)
        order = Order.place(command)
        await self.orders.add(order)
        try:
            await self.events.publish(OrderCreated.from_order(order))
        except BaseException:
            # No order without its event: the client gets an error and retries with the same key.
            with contextlib.suppress(DependencyUnavailable):
                await self.orders.remove(order.id)
            raise
        return order

    async def get(self, order_id: str) -> Order | None:
        return await self.orders.get(order_id)

    async def customer_for_telegram(self, telegram_id: int, account: TelegramAccount) -> tuple[Customer, bool]:
        """The users-data user behind a Telegram account (made on its first order), whose id a bot
        then places orders with: users-data decides, idempotently, so asking again is harmless."""
        return await self.users.for_telegram(telegram_id, account)
