"""The one place that reads and writes catalog items in MongoDB.

Documents are turned into Items here and nowhere else: `_id` is the item's UUID, the price is kept
as a whole number of cents (`price_cents`: exact, and sortable, where a float would not be).
Every write is a single-document operation, which MongoDB applies atomically, so no use case needs
a multi-document transaction (which a standalone server, or FerretDB, does not offer).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from motor.motor_asyncio import AsyncIOMotorCollection
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from catalog_data.adapters.database import ITEMS, SKU_UNIQUE, Database, Document
from catalog_data.domain.model import Item, ItemChanges, normalize_sku, price_cents, price_of_cents
from platform_contract.domain import KeyTaken

LIST_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]


def to_document(item: Item) -> Document:
    return {
        "_id": item.id,
        "sku": item.sku,
        "name": item.name,
        "price_cents": price_cents(item.price),
        "created_at": item.created_at,
    }


def to_item(doc: Mapping[str, Any]) -> Item:
    return Item(
        id=doc["_id"],
        sku=doc["sku"],
        name=doc["name"],
        price=price_of_cents(doc["price_cents"]),
        created_at=doc["created_at"],
    )


def sku_taken(error: OperationFailure) -> bool:
    """Whether a write failed on the unique SKU index.

    MongoDB says so with DuplicateKeyError (E11000) and names the index's key pattern. FerretDB v1
    does too for inserts, but reports a unique violation on update as InternalError (code 1) with
    SQLite's or PostgreSQL's own words naming its table's index (`<collection>_<hash>_sku_unique`).
    """
    if isinstance(error, DuplicateKeyError):
        pattern = (error.details or {}).get("keyPattern")
        return pattern is None or "sku" in pattern  # ids are uuid4s made here: a clash is the SKU's
    message = str((error.details or {}).get("errmsg", error))
    unique_violation = "UNIQUE constraint failed" in message or "duplicate key value violates unique" in message
    return unique_violation and f"_{SKU_UNIQUE}" in message


class ItemRepository:
    def __init__(self, db: Database) -> None:
        self._items: AsyncIOMotorCollection[Document] = db[ITEMS]

    async def add(self, item: Item) -> None:
        try:
            await self._items.insert_one(to_document(item))
        except OperationFailure as error:
            if sku_taken(error):
                raise KeyTaken("an item", "sku", item.sku) from None
            raise

    async def get(self, item_id: uuid.UUID) -> Item | None:
        doc = await self._items.find_one({"_id": item_id})
        return to_item(doc) if doc else None

    async def get_by_sku(self, sku: str) -> Item | None:
        doc = await self._items.find_one({"sku": normalize_sku(sku)})
        return to_item(doc) if doc else None

    async def list(self, *, limit: int, offset: int = 0) -> list[Item]:
        cursor = self._items.find().sort(LIST_ORDER).skip(offset).limit(limit)
        return [to_item(doc) async for doc in cursor]

    async def change(self, item_id: uuid.UUID, changes: ItemChanges) -> Item | None:
        """Sets only the fields given, in one atomic write, and returns the item as it is now (None
        when there is none). Two concurrent changes of different fields both stay."""
        fields: Document = {}
        if changes.sku is not None:
            fields["sku"] = changes.sku
        if changes.name is not None:
            fields["name"] = changes.name
        if changes.price is not None:
            fields["price_cents"] = price_cents(changes.price)
        try:
            if not fields:
                doc = await self._items.find_one({"_id": item_id})
            else:
                doc = await self._items.find_one_and_update(
                    {"_id": item_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
                )
        except OperationFailure as error:
            if changes.sku is not None and sku_taken(error):
                raise KeyTaken("an item", "sku", changes.sku) from None
            raise
        return to_item(doc) if doc else None

    async def delete(self, item_id: uuid.UUID) -> bool:
        result = await self._items.delete_one({"_id": item_id})
        return result.deleted_count == 1
