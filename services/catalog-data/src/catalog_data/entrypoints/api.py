"""The HTTP API: catalog items CRUD plus /health, /ready and /metrics. Routes translate HTTP to the
service layer and domain errors to status codes; they hold no rule of their own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure

from catalog_data.adapters.database import describe
from catalog_data.adapters.repository import ItemRepository
from catalog_data.config import Settings
from catalog_data.domain.model import InvalidItem, Item, ItemNotFound, SkuTaken
from catalog_data.service_layer import services
from platform_contract.data_service import Wiring, add_probes, data_app

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


Items = Annotated[ItemRepository, Depends(_items)]


def create_app(settings: Settings, *, items: Callable[[], ItemRepository], wiring: Wiring) -> FastAPI:
    app = data_app(
        settings, wiring, title="catalog-data", not_found=ItemNotFound, conflict=SkuTaken, invalid=InvalidItem
    )
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

    @app.post("/items", status_code=status.HTTP_201_CREATED, response_model=ItemOut)
    async def create_item(body: NewItem, items: Items, response: Response) -> ItemOut:
        item = await services.create_item(items, sku=body.sku, name=body.name, price=body.price)
        response.headers["Location"] = f"/items/{item.id}"
        return ItemOut.of(item)

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def get_item(item_id: uuid.UUID, items: Items) -> ItemOut:
        return ItemOut.of(await services.get_item(items, item_id))

    @app.get("/items", response_model=list[ItemOut])
    async def list_items(
        items: Items,
        sku: Annotated[str | None, Query(description="exact SKU, any case")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[ItemOut]:
        found = await services.find_items(items, sku=sku, limit=limit, offset=offset)
        return [ItemOut.of(i) for i in found]

    @app.patch("/items/{item_id}", response_model=ItemOut)
    async def patch_item(item_id: uuid.UUID, body: ItemChangesIn, items: Items) -> ItemOut:
        item = await services.change_item(items, item_id, sku=body.sku, name=body.name, price=body.price)
        return ItemOut.of(item)

    @app.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_item(item_id: uuid.UUID, items: Items) -> Response:
        await services.remove_item(items, item_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    add_probes(
        app,
        wiring,
        ready_description="Readiness: the database answers and the indexes exist; without them this service can do\n"
        "nothing useful (or, without the unique index, nothing safe).",
    )
    return app
