"""catalog-data's names for the data services' shared tests (platform_contract.testing.data_service)."""

from __future__ import annotations

import uuid
from typing import Any

from catalog_data.config import Settings
from platform_contract.testing.data_service import DataService


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:12].upper()}"


class CatalogData(DataService):
    settings_class = Settings
    service = "catalog-data"
    collection = "/items"
    id_route = "/items/{item_id}"
    key = "sku"
    taken = "an item with sku {} already exists"
    noun = "item"

    def new_key(self) -> str:
        return new_sku()

    def other_case(self, key: str) -> str:
        return key.lower()

    def body(self, key: str) -> dict[str, Any]:
        return {"sku": key, "name": "Mug", "price": "9.99"}
