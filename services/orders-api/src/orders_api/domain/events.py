"""Events orders-api publishes. Consumers (notifier-worker) read these field names: a change that
is not backwards compatible needs a new schema_version."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from orders_api.domain.model import Order


class OrderCreated(BaseModel):
    model_config = ConfigDict(frozen=True)

    routing_key: ClassVar[str] = "order.created"

    order_id: str
    user_id: str
    item: str
    quantity: int
    created_at: datetime
    schema_version: Literal[1] = 1

    @classmethod
    def from_order(cls, order: Order) -> OrderCreated:
        return cls(
            order_id=order.id,
            user_id=order.user_id,
            item=order.item,
            quantity=order.quantity,
            created_at=order.created_at,
        )
