"""What an order is to the bot, and the rules of the conversation that builds one. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_ITEM_LENGTH = 100
MAX_QUANTITY = 100
YES = frozenset({"yes", "y", "confirm", "ok"})
NO = frozenset({"no", "n", "cancel"})


class InvalidInput(ValueError):
    """The user's answer cannot be used; the message says what would be."""


@dataclass(frozen=True)
class Draft:
    """An order being put together in the conversation, before orders-api has seen it."""

    item: str
    quantity: int


@dataclass(frozen=True)
class Order:
    """An order as orders-api knows it."""

    id: str
    item: str
    quantity: int
    status: str = ""

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Order:
        # orders-api's ids may be numbers or strings; the bot only ever shows them.
        return cls(
            id=str(body["id"]),
            item=str(body.get("item", "")),
            quantity=int(body.get("quantity", 0)),
            status=str(body.get("status") or ""),
        )


def parse_item(text: str | None) -> str:
    item = " ".join((text or "").split())
    if not item or item.startswith("/"):
        raise InvalidInput("Please send the name of the item you want, e.g. pizza.")
    if len(item) > MAX_ITEM_LENGTH:
        raise InvalidInput(f"That name is too long; please keep it under {MAX_ITEM_LENGTH} characters.")
    return item


def parse_quantity(text: str | None) -> int:
    value = (text or "").strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_QUANTITY:
        raise InvalidInput(f"Please send a whole number from 1 to {MAX_QUANTITY}.")
    return int(value)


def parse_confirmation(text: str | None) -> bool:
    answer = (text or "").strip().lower()
    if answer in YES:
        return True
    if answer in NO:
        return False
    raise InvalidInput("Please answer yes or no.")


def idempotency_key(bot_id: int, update_id: int) -> str:
    """The Idempotency-Key for the order a Telegram update confirms.

    Telegram delivers an update again (same update_id) when a webhook call failed or a poller
    died before acknowledging it; the same key then makes orders-api return the order it already
    created instead of creating a second one. update_id is unique per bot, hence the bot id.
    """
    return f"telegram-{bot_id}-{update_id}"
