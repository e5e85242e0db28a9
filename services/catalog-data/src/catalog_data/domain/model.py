"""The catalog Item and its rules, free of any framework: what a valid item is, and what may change."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial

from platform_contract.domain import InvalidField, one_line_name

SKU_MAX_LENGTH = 64
NAME_MAX_LENGTH = 200
PRICE_MAX = Decimal("1000000000")  # a billion, in the catalog's currency: anything above is a typo
CENT = Decimal("0.01")

# A stock-keeping unit as warehouses write it: letters and digits, with - _ . inside.
_SKU = re.compile(rf"[A-Z0-9](?:[A-Z0-9._-]{{0,{SKU_MAX_LENGTH - 2}}}[A-Z0-9])?")


def normalize_sku(sku: str) -> str:
    """SKUs are compared without regard to case (ab-1 and AB-1 are one product), so they are stored
    uppercased and looked up the same way."""
    return sku.strip().upper()


def valid_sku(sku: str) -> str:
    sku = normalize_sku(sku)
    if not sku:
        raise InvalidField("sku", "must not be empty")
    if len(sku) > SKU_MAX_LENGTH:
        raise InvalidField("sku", f"longer than {SKU_MAX_LENGTH} characters")
    if not _SKU.fullmatch(sku):
        raise InvalidField("sku", f"{sku!r} may hold only letters, digits and - _ . (not at either end)")
    return sku


valid_name = partial(one_line_name, max_length=NAME_MAX_LENGTH)


def valid_price(price: Decimal | int | str) -> Decimal:
    """A price with at most two decimals, 0 <= price < PRICE_MAX, always with exactly two."""
    try:
        value = Decimal(price)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidField("price", f"{price!r} is not a number") from None
    if not value.is_finite():
        raise InvalidField("price", "must be a finite number")
    if value < 0:
        raise InvalidField("price", "must not be negative")
    if value >= PRICE_MAX:
        raise InvalidField("price", f"must be less than {PRICE_MAX}")
    if value != value.quantize(CENT):
        raise InvalidField("price", "has more than two decimals")
    return value.quantize(CENT)


def price_cents(price: Decimal) -> int:
    """The price as a whole number of cents: exact, and what the database stores."""
    return int(price * 100)


def price_of_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def _now() -> datetime:
    # MongoDB keeps datetimes to the millisecond: an item is made as it will be read back.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Item:
    id: uuid.UUID
    sku: str
    name: str
    price: Decimal
    created_at: datetime

    @classmethod
    def create(cls, sku: str, name: str, price: Decimal | int | str, *, now: datetime | None = None) -> Item:
        # The id is made here, not by the database, so an item is whole before it is stored.
        return cls(
            id=uuid.uuid4(),
            sku=valid_sku(sku),
            name=valid_name(name),
            price=valid_price(price),
            created_at=now or _now(),
        )


@dataclass(frozen=True, slots=True)
class ItemChanges:
    """What a change sets, each field checked by the same rules as a new item; None keeps it."""

    sku: str | None = None
    name: str | None = None
    price: Decimal | None = None

    @classmethod
    def of(
        cls, *, sku: str | None = None, name: str | None = None, price: Decimal | int | str | None = None
    ) -> ItemChanges:
        return cls(
            sku=None if sku is None else valid_sku(sku),
            name=None if name is None else valid_name(name),
            price=None if price is None else valid_price(price),
        )

    def applied_to(self, item: Item) -> Item:
        """The item as it is once changed; id and created_at never change."""
        return dataclasses.replace(
            item,
            sku=item.sku if self.sku is None else self.sku,
            name=item.name if self.name is None else self.name,
            price=item.price if self.price is None else self.price,
        )
