"""The event this worker reacts to and the notification it sends. Pure: no I/O, no client.

OrderCreated is published by the orders service; newer producers may add fields, so unknown
fields are ignored rather than refused (a consumer must not break when its producer grows).
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PoisonMessage(Exception):
    """A message that can never be handled, however often it is retried (bad JSON or schema)."""


class OrderCreated(BaseModel):
    # Ids may arrive as numbers from producers that use integer keys; they are ids, not amounts.
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    item: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    created_at: datetime
    schema_version: int = 1


class Notification(BaseModel):
    """What is sent to the user (and recorded, so that "sent once" can be checked)."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    user_id: str
    text: str


def parse_order_created(body: bytes) -> OrderCreated:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PoisonMessage(f"body is a JSON {type(data).__name__}, not an object")
    try:
        return OrderCreated.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors())
        raise PoisonMessage(f"not an OrderCreated event (invalid: {fields})") from exc


def notification_for(event: OrderCreated) -> Notification:
    return Notification(
        order_id=event.order_id,
        user_id=event.user_id,
        text=f"Your order {event.order_id} is confirmed: {event.quantity} x {event.item}.",
    )
