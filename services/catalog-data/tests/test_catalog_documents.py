"""How items become documents and how write errors are read (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from catalog_data.adapters.repository import sku_taken, to_document, to_item
from catalog_data.domain.model import Item

NOW = datetime(2025, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_an_item_round_trips_through_its_document() -> None:
    item = Item.create("ab-1", "Mug", "12.34", now=NOW)

    doc = to_document(item)

    assert doc == {"_id": item.id, "sku": "AB-1", "name": "Mug", "price_cents": 1234, "created_at": NOW}
    assert to_item(doc) == item
    assert to_item(doc).price == Decimal("12.34")


# What MongoDB 7 answers on a duplicate of a unique index (trimmed to the fields that matter).
MONGO_DUPLICATE_SKU = {
    "code": 11000,
    "errmsg": 'E11000 duplicate key error collection: catalog.items index: sku_unique dup key: { sku: "A" }',
    "keyPattern": {"sku": 1},
    "keyValue": {"sku": "A"},
}
MONGO_DUPLICATE_ID = {**MONGO_DUPLICATE_SKU, "keyPattern": {"_id": 1}, "keyValue": {"_id": "x"}}
# What FerretDB v1 answers on an insert (E11000, no key pattern) and on an update (InternalError).
FERRETDB_INSERT = {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error collection: catalog.items"}
FERRETDB_SQLITE_UPDATE = {
    "ok": 0.0,
    "code": 1,
    "codeName": "InternalError",
    "errmsg": "[msg_update.go:133 handler.(*Handler).updateDocument] constraint failed: "
    "UNIQUE constraint failed: index 'items_3a79338f_sku_unique' (2067)",
}
FERRETDB_PG_UPDATE = {
    **FERRETDB_SQLITE_UPDATE,
    "errmsg": 'ERROR: duplicate key value violates unique constraint "items_3a79338f_sku_unique" (SQLSTATE 23505)',
}


@pytest.mark.parametrize(
    ("error", "taken"),
    [
        (DuplicateKeyError(MONGO_DUPLICATE_SKU["errmsg"], 11000, MONGO_DUPLICATE_SKU), True),
        (DuplicateKeyError(MONGO_DUPLICATE_ID["errmsg"], 11000, MONGO_DUPLICATE_ID), False),
        (DuplicateKeyError(FERRETDB_INSERT["errmsg"], 11000, FERRETDB_INSERT), True),
        (OperationFailure(FERRETDB_SQLITE_UPDATE["errmsg"], 1, FERRETDB_SQLITE_UPDATE), True),
        (OperationFailure(FERRETDB_PG_UPDATE["errmsg"], 1, FERRETDB_PG_UPDATE), True),
        (OperationFailure("UNIQUE constraint failed: index 'items_1_other' (2067)", 1, {}), False),
        (OperationFailure("not authorized on catalog", 13, {"code": 13}), False),
    ],
)
def test_which_write_errors_mean_the_sku_is_taken(error: OperationFailure, taken: bool) -> None:
    assert sku_taken(error) is taken
