"""catalog-data's names for the data services' shared tests (platform_contract.testing.data_service)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from catalog_data.bootstrap import build_app
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
    example_url = "mongodb://u:p@catalog-db:27017/catalog"
    other_engine = "postgres"
    unreachable_url = "mongodb://catalog:secret@127.0.0.1:{port}/catalog"
    refusal = r"MongoDB only; set spec\.database\.engine: mongo"

    def new_key(self) -> str:
        return new_sku()

    def other_case(self, key: str) -> str:
        return key.lower()

    def body(self, key: str) -> dict[str, Any]:
        return {"sku": key, "name": "Mug", "price": "9.99"}

    def build_app(self, settings: Settings) -> FastAPI:
        return build_app(settings)

    def check_example_url(self, settings: Settings) -> None:
        assert settings.mongo_url().database == "catalog"
