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
    async def user_for_telegram(self, telegram_id: int, name: str) -> str:
        """users-data's id of the user of this Telegram account, made (with `name`) if new."""

    async def create(self, user_id: str, draft: Draft, idempotency_key: str) -> Order: ...

    async def get(self, order_id: str) -> Order | None: ...


class Ordering:
    def __init__(self, orders: OrdersPort) -> None:
        self._orders = orders

    async def place(self, telegram_id: int, name: str, draft: Draft, idempotency_key: str) -> Order:
        # Orders belong to users-data's users, which are not Telegram's: the account's user is
        # looked up (made on the first order) through orders-api, idempotently, before each order.
        # The same account always maps to the same user, so a retried order keeps its body, as
        # its Idempotency-Key requires.
        user_id = await self._orders.user_for_telegram(telegram_id, name)
        return await self._orders.create(user_id, draft, idempotency_key)

    async def find(self, order_id: str) -> Order | None:
        return await self._orders.get(order_id.strip())
