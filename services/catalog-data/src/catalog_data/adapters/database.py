"""The client, the readiness check and the indexes: everything that touches MongoDB as a server
rather than as a collection."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, TypeAlias

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo import ASCENDING, IndexModel

from catalog_data.config import Settings
from platform_contract.data_service import StartupStep, answers_within

log = logging.getLogger(__name__)

Document = dict[str, Any]
# Motor's classes are generic in its type stubs only: strings, so that nothing subscripts them at run time.
Client: TypeAlias = "AsyncIOMotorClient[Document]"
Database: TypeAlias = "AsyncIOMotorDatabase[Document]"

ITEMS = "items"
SKU_UNIQUE = "sku_unique"
# What the collections need: the unique SKU (the database, not a read before the write, refuses a
# duplicate) and the listing order (oldest first, the id breaking ties, so that pages are stable).
INDEXES: dict[str, list[IndexModel]] = {
    ITEMS: [
        IndexModel([("sku", ASCENDING)], name=SKU_UNIQUE, unique=True),
        IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created_at_id"),
    ],
}


def create_client(settings: Settings) -> Client:
    """The client; it connects lazily, in the background: building it needs no database."""
    url = settings.mongo_url()
    log.info("database: %s (database %s)", url.redacted, url.database)
    timeout_ms = int(settings.db_connect_timeout_seconds * 1000)
    client: Client = AsyncIOMotorClient(
        url.url,
        appname=settings.service_name,
        tz_aware=True,  # datetimes come back in UTC, as they went in
        uuidRepresentation="standard",  # ids are BSON binary subtype 4, what every driver reads as a UUID
        maxPoolSize=settings.db_pool_size,
        connectTimeoutMS=timeout_ms,
        serverSelectionTimeoutMS=timeout_ms,  # a request fails after this when the database is down
    )
    return client


def database(client: Client, settings: Settings) -> Database:
    return client.get_database(settings.mongo_url().database)


async def ping(db: Database, within_seconds: float) -> str:
    """'' when the database answers within `within_seconds`, else why not (no credentials in it)."""
    return await answers_within(within_seconds, partial(db.command, "ping"), describe)


def describe(error: BaseException) -> str:
    """What went wrong, in the driver's words (they name hosts, never the password)."""
    return f"{type(error).__name__}: {error}"[:300]


async def ensure_indexes(db: Database) -> None:
    """Creates the indexes that are missing; those already there are left alone (so every replica
    may run this at startup, together or not)."""
    for collection, indexes in INDEXES.items():
        # One createIndexes command per index: FerretDB v1.24 drops the connection (a panic on its
        # side) when one command lists two or more indexes that exist already.
        names = [await db[collection].create_indexes([index]) for index in indexes]
        log.info("indexes of %s: %s", collection, ", ".join(n for batch in names for n in batch))


def startup_indexes(db: Database) -> StartupStep:
    """The indexes a starting replica ensures in the background, retried until it succeeds (the pod
    is alive and not ready meanwhile: see StartupStep). Without the unique index a duplicate SKU
    would not be refused, so the pod is not ready before."""
    words = {"failed": "creating the indexes failed", "not_done": "indexes not created yet", "running": "creating"}
    return StartupStep(partial(ensure_indexes, db), describe=describe, log=log, **words)
