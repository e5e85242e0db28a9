"""The order and the command that creates one. These pydantic models are also the HTTP DTOs:
the API exposes the domain as is, and one definition keeps the two from drifting apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_QUANTITY = 10_000
TELEGRAM_ID_MAX = 2**63 - 1  # users-data keeps it in a bigint; Telegram's ids are positive


def _id_as_text(value: Any) -> Any:
    # users-data may hand out numeric ids; clients send whatever they got. One spelling (text)
    # keeps the idempotency fingerprint, the stored order and the event identical either way.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# Safe in a URL path segment of users-data and in a Redis key, so it needs no escaping anywhere.
UserId = Annotated[
    str,
    BeforeValidator(_id_as_text),
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", examples=["42"]),
]


class CreateOrder(BaseModel):
    """The body of POST /orders."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    user_id: UserId
    item: str = Field(min_length=1, max_length=200, examples=["coffee beans"])
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True, examples=[2])


class Order(BaseModel):
    """A placed order, as stored and as returned by the API."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    item: str
    quantity: int
    created_at: datetime

    @classmethod
    def place(cls, command: CreateOrder, now: datetime | None = None) -> Order:
        return cls(
            id=uuid.uuid4().hex,
            user_id=command.user_id,
            item=command.item,
            quantity=command.quantity,
            created_at=now or datetime.now(UTC),
        )


class TelegramAccount(BaseModel):
    """The body of PUT /users/by-telegram/{telegram_id}: what a bot knows of the account's user."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    name: str = Field(min_length=1, max_length=200, examples=["Ann Lee"])


class Customer(BaseModel):
    """A user of users-data, as far as a client placing orders needs one: `id` is the `user_id`
    of its orders."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    telegram_id: int | None = None
    created_at: datetime
