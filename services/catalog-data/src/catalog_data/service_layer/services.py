"""The use cases, one function each: what the HTTP routes (and any future entrypoint) call.

Each is a single-document operation on the repository, atomic in MongoDB by itself; the unique
SKU index, not a read before the write, refuses a duplicate (two concurrent creations of one SKU
cannot both pass it).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from catalog_data.adapters.repository import ItemRepository
from catalog_data.domain.model import Item, ItemChanges
from platform_contract.domain import RecordNotFound


async def create_item(items: ItemRepository, *, sku: str, name: str, price: Decimal | int | str) -> Item:
    item = Item.create(sku, name, price)
    await items.add(item)  # KeyTaken if the SKU is in use
    return item


async def get_item(items: ItemRepository, item_id: uuid.UUID) -> Item:
    item = await items.get(item_id)
    if item is None:
        raise RecordNotFound("item", item_id)
    return item


async def find_items(items: ItemRepository, *, sku: str | None, limit: int, offset: int) -> list[Item]:
    if sku is not None:
        item = await items.get_by_sku(sku)
        return [item] if item and offset == 0 else []
    return await items.list(limit=limit, offset=offset)


async def change_item(
    items: ItemRepository,
    item_id: uuid.UUID,
    *,
    sku: str | None = None,
    name: str | None = None,
    price: Decimal | int | str | None = None,
) -> Item:
    changes = ItemChanges.of(sku=sku, name=name, price=price)  # InvalidField before anything is written
    item = await items.change(item_id, changes)
    if item is None:
        raise RecordNotFound("item", item_id)
    return item


async def remove_item(items: ItemRepository, item_id: uuid.UUID) -> None:
    if not await items.delete(item_id):
        raise RecordNotFound("item", item_id)
