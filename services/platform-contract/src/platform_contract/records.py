"""The routes every data service has for its records (extra `fastapi`), written once: create, get,
find (by its unique key, or a page of all), change and delete, each a call of one of the service's
use cases. What is the service's own: the names, the request and response models, and the use cases.

(No `from __future__ import annotations` here: the routes are annotated with the service's own
models, which FastAPI reads from the signatures as they are made; mypy cannot know them.)
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Path, Query, Request, Response, status
from pydantic import BaseModel


class RecordOut(Protocol):
    @classmethod
    def of(cls, record: Any) -> BaseModel: ...


@dataclass(frozen=True)
class Records:
    """One data service's records over HTTP. The use cases take the store first, and the fields
    of the request models as keyword arguments (create and change) or the unique `key` (find)."""

    noun: str  # "user": the collection is /users, a record /users/{user_id}
    key: str  # "email": unique per record, a query parameter of the collection
    key_description: str  # "exact address, any case"
    new: type[BaseModel]  # the body of a POST
    changes: type[BaseModel]  # the body of a PATCH: a field left out (None) keeps its value
    out: type[RecordOut]  # what a record is answered as
    store: Callable[[Request], object]  # the store the use cases work on, for a request
    create: Callable[..., Awaitable[Any]]  # -> the record made
    get: Callable[[Any, uuid.UUID], Awaitable[Any]]  # -> the record, or RecordNotFound
    find: Callable[..., Awaitable[list[Any]]]  # (store, key=, limit=, offset=) -> the records
    change: Callable[..., Awaitable[Any]]  # -> the record as changed, or RecordNotFound
    remove: Callable[[Any, uuid.UUID], Awaitable[None]]  # or RecordNotFound

    @property
    def collection(self) -> str:
        return f"/{self.noun}s"


def add_record_routes(app: FastAPI, records: Records) -> None:
    """POST and GET of records.collection, GET, PATCH and DELETE of one record by its id: the
    operations `create_user`, `list_users`, `get_user`, `patch_user` and `delete_user` (for "user")."""
    r = records
    noun, nouns, collection = r.noun, f"{r.noun}s", r.collection
    one = f"{collection}/{{{noun}_id}}"
    Store = Annotated[Any, Depends(r.store)]
    RecordId = Annotated[uuid.UUID, Path(alias=f"{noun}_id")]

    @app.post(collection, status_code=status.HTTP_201_CREATED, response_model=r.out, name=f"create_{noun}")
    async def create(body: r.new, store: Store, response: Response) -> Any:  # type: ignore[name-defined]
        record = await r.create(store, **body.model_dump())
        response.headers["Location"] = f"{collection}/{record.id}"
        return r.out.of(record)

    @app.get(one, response_model=r.out, name=f"get_{noun}")
    async def get(record_id: RecordId, store: Store) -> Any:
        return r.out.of(await r.get(store, record_id))

    @app.get(collection, response_model=list[r.out], name=f"list_{nouns}")  # type: ignore[name-defined]
    async def find(
        store: Store,
        key: Annotated[str | None, Query(alias=r.key, description=r.key_description)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Any:
        found = await r.find(store, limit=limit, offset=offset, **{r.key: key})
        return [r.out.of(record) for record in found]

    @app.patch(one, response_model=r.out, name=f"patch_{noun}")
    async def patch(record_id: RecordId, body: r.changes, store: Store) -> Any:  # type: ignore[name-defined]
        return r.out.of(await r.change(store, record_id, **body.model_dump()))

    @app.delete(one, status_code=status.HTTP_204_NO_CONTENT, name=f"delete_{noun}")
    async def delete(record_id: RecordId, store: Store) -> Response:
        await r.remove(store, record_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
