"""The HTTP API: catalog items CRUD plus /health, /ready and /metrics. Routes translate HTTP to the
service layer and domain errors to status codes; they hold no rule of their own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure

from catalog_data.adapters.database import describe
from catalog_data.adapters.repository import ItemRepository
from catalog_data.config import Settings
from catalog_data.domain.model import Item
from catalog_data.service_layer import services
from platform_contract.data_service import Wiring, add_probes, data_app
from platform_contract.records import Records, add_record_routes

log = logging.getLogger("catalog_data.api")


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str
    name: str
    price: Decimal  # a JSON number or a string ("12.50"); at most two decimals


class ItemChangesIn(BaseModel):
    """Only the fields present change; a field left out (or null) keeps its value."""

    model_config = ConfigDict(extra="forbid")
    sku: str | None = None
    name: str | None = None
    price: Decimal | None = None


class ItemOut(BaseModel):
    id: uuid.UUID
    sku: str
    name: str
    price: Decimal  # written as a string with two decimals ("12.50"): exact, unlike a float
    created_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(id=item.id, sku=item.sku, name=item.name, price=item.price, created_at=item.created_at)


def _items(request: Request) -> ItemRepository:
    factory: Callable[[], ItemRepository] = request.app.state.items
    return factory()


def create_app(settings: Settings, *, items: Callable[[], ItemRepository], wiring: Wiring) -> FastAPI:
    app = data_app(settings, wiring, title="catalog-data")
    app.state.items = items

    @app.exception_handler(ConnectionFailure)
    async def database_unavailable(_: Request, error: ConnectionFailure) -> JSONResponse:
        # The database is down or unreachable (after DB_CONNECT_TIMEOUT_SECONDS): the caller may retry.
        log.warning("database unavailable: %s", describe(error))
        return JSONResponse(
            {"detail": "database unavailable"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    add_record_routes(
        app,
        Records(
            noun="item",
            key="sku",
            key_description="exact SKU, any case",
            new=NewItem,
            changes=ItemChangesIn,
            out=ItemOut,
            store=_items,
            create=services.create_item,
            get=services.get_item,
            find=services.find_items,
            change=services.change_item,
            remove=services.remove_item,
        ),
    )

    add_probes(
        app,
        wiring,
        ready_description="Readiness: the database answers and the indexes exist; without them this service can do\n"
        "nothing useful (or, without the unique index, nothing safe).",
    )
    return app
