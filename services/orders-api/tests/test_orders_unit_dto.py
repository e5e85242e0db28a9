"""The DTOs: what POST /orders accepts, and the exact shape of the order.created event that
consumers (notifier-worker) read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from orders_api.domain.events import OrderCreated
from orders_api.domain.model import CreateOrder, Order


def test_a_valid_order_request_is_accepted_with_whitespace_trimmed():
    cmd = CreateOrder.model_validate({"user_id": "42", "item": "  coffee  ", "quantity": 3})
    assert (cmd.user_id, cmd.item, cmd.quantity) == ("42", "coffee", 3)


def test_a_numeric_user_id_is_kept_as_text():
    assert CreateOrder.model_validate({"user_id": 42, "item": "tea", "quantity": 1}).user_id == "42"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "42", "item": "tea", "quantity": 0}, "quantity"),
        ({"user_id": "42", "item": "tea", "quantity": 10_001}, "quantity"),
        ({"user_id": "42", "item": "tea", "quantity": "2"}, "quantity"),
        ({"user_id": "42", "item": "tea", "quantity": 1.5}, "quantity"),
        ({"user_id": "42", "item": "", "quantity": 1}, "item"),
        ({"user_id": "42", "item": "x" * 201, "quantity": 1}, "item"),
        ({"user_id": "../admin", "item": "tea", "quantity": 1}, "user_id"),
        ({"user_id": "", "item": "tea", "quantity": 1}, "user_id"),
        ({"user_id": True, "item": "tea", "quantity": 1}, "user_id"),
        ({"item": "tea", "quantity": 1}, "user_id"),
        ({"user_id": "42", "item": "tea", "quantity": 1, "price": 3}, "price"),
    ],
)
def test_an_invalid_order_request_names_the_field(body, field):
    with pytest.raises(ValidationError) as err:
        CreateOrder.model_validate(body)
    assert field in {str(loc) for e in err.value.errors() for loc in e["loc"]}


def test_placing_an_order_gives_a_fresh_id_each_time():
    cmd = CreateOrder(user_id="42", item="tea", quantity=2)
    a, b = Order.place(cmd), Order.place(cmd)
    assert a.id != b.id
    assert len(a.id) == 32
    assert a.created_at.tzinfo is not None


def test_the_order_created_event_has_exactly_the_documented_fields():
    created = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    order = Order.place(CreateOrder(user_id="42", item="tea", quantity=2), now=created)
    wire = json.loads(OrderCreated.from_order(order).model_dump_json())
    assert wire == {
        "order_id": order.id,
        "user_id": "42",
        "item": "tea",
        "quantity": 2,
        "created_at": "2024-05-01T12:30:00Z",
        "schema_version": 1,
    }
    assert OrderCreated.routing_key == "order.created"


def test_an_event_of_another_schema_version_is_refused():
    payload = {
        "order_id": "a",
        "user_id": "42",
        "item": "tea",
        "quantity": 1,
        "created_at": "2024-05-01T12:30:00Z",
        "schema_version": 2,
    }
    with pytest.raises(ValidationError):
        OrderCreated.model_validate(payload)
    payload["schema_version"] = 1
    assert OrderCreated.model_validate(payload).order_id == "a"
