"""The bot's use cases: place an order (once, whatever Telegram redelivers) and look one up."""

from __future__ import annotations

from typing import Protocol

from telegram_bot.domain.orders import Draft, Order


class OrdersUnavailable(Exception):
    """orders-api could not be reached or failed; asking again later may work."""


class OrderRejected(Exception):
    """orders-api refused the request; asking again the same way will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"orders-api answered {status}: {detail}")
        self.status = status
        self.detail = detail


class OrdersPort(Protocol):
    async def create(self, user_id: str, draft: Draft, idempotency_key: str) -> Order: ...

    async def get(self, order_id: str) -> Order | None: ...


class Ordering:
    def __init__(self, orders: OrdersPort) -> None:
        self._orders = orders

    async def place(self, user_id: int, draft: Draft, idempotency_key: str) -> Order:
        # Telegram's ids are numbers; sent as a string, which both a str and an int field accept.
        return await self._orders.create(str(user_id), draft, idempotency_key)

    async def find(self, order_id: str) -> Order | None:
        return await self._orders.get(order_id.strip())
