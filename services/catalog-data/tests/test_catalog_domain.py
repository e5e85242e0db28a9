"""The Item's rules, without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog_data.domain.model import (
    NAME_MAX_LENGTH,
    PRICE_MAX,
    SKU_MAX_LENGTH,
    Item,
    ItemChanges,
    normalize_sku,
    price_cents,
    price_of_cents,
)
from platform_contract.domain import InvalidField

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_create_normalizes_sku_name_and_price() -> None:
    item = Item.create("  ab-12.x ", "  Blue   mug ", "12.5", now=NOW)

    assert item.sku == "AB-12.X"
    assert item.name == "Blue mug"
    assert item.price == Decimal("12.50") and str(item.price) == "12.50"
    assert item.created_at == NOW
    assert item.id.version == 4


def test_create_gives_each_item_its_own_id() -> None:
    assert Item.create("A", "A", 1).id != Item.create("A", "A", 1).id


def test_created_at_is_now_in_utc_to_the_millisecond_as_mongodb_keeps_it() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    item = Item.create("A", "A", 1)
    assert before <= item.created_at <= datetime.now(UTC)
    assert item.created_at.tzinfo is not None
    assert item.created_at.microsecond % 1000 == 0


@pytest.mark.parametrize("sku", ["A", "ab", "X-1_2.3", "9" * SKU_MAX_LENGTH])
def test_valid_skus(sku: str) -> None:
    assert Item.create(sku, "Mug", 1).sku == sku.upper()


@pytest.mark.parametrize("sku", ["", "   ", "-A", "A-", "A B", "ä1", "A/B", "A$", "x" * (SKU_MAX_LENGTH + 1)])
def test_invalid_sku_is_refused_naming_the_field(sku: str) -> None:
    with pytest.raises(InvalidField) as info:
        Item.create(sku, "Mug", 1)
    assert info.value.field == "sku"
    assert str(info.value).startswith("sku: ")


@pytest.mark.parametrize("name", ["", "   ", "x" * (NAME_MAX_LENGTH + 1)])
def test_invalid_name_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidField) as info:
        Item.create("A", name, 1)
    assert info.value.field == "name"


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        ("-0.01", "negative"),
        ("1.005", "more than two decimals"),
        ("abc", "not a number"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        (PRICE_MAX, "less than"),
    ],
)
def test_invalid_price_is_refused_naming_the_field(price: str | Decimal, problem: str) -> None:
    with pytest.raises(InvalidField, match=problem) as info:
        Item.create("A", "Mug", price)
    assert info.value.field == "price"


@pytest.mark.parametrize(
    ("price", "expected"), [(0, "0.00"), ("7", "7.00"), (Decimal("0.1"), "0.10"), ("1.50", "1.50")]
)
def test_prices_always_carry_two_decimals(price: int | str | Decimal, expected: str) -> None:
    assert str(Item.create("A", "Mug", price).price) == expected


@given(st.decimals(min_value=0, max_value=PRICE_MAX - Decimal("0.01"), places=2, allow_nan=False))
def test_cents_hold_every_valid_price_exactly(price: Decimal) -> None:
    cents = price_cents(price)
    assert isinstance(cents, int)
    assert price_of_cents(cents) == price


def test_sku_lookups_ignore_case_and_spaces() -> None:
    assert normalize_sku(" ab-1 ") == "AB-1"


def test_changes_check_only_what_is_given() -> None:
    changes = ItemChanges.of(name="  New   name ")
    assert changes == ItemChanges(sku=None, name="New name", price=None)

    with pytest.raises(InvalidField) as info:
        ItemChanges.of(name="ok", price="-1")
    assert info.value.field == "price"


def test_changes_applied_keep_id_and_created_at() -> None:
    item = Item.create("A", "Mug", "3", now=NOW)

    changed = ItemChanges.of(sku="b", price=4).applied_to(item)

    assert changed == dataclasses.replace(item, sku="B", price=Decimal("4.00"))
    assert ItemChanges.of().applied_to(item) == item
