"""The client, the readiness check and the indexes: everything that touches MongoDB as a server
rather than as a collection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo import ASCENDING, IndexModel

from catalog_data.config import Settings

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
    try:
        async with asyncio.timeout(within_seconds):
            await db.command("ping")
    except TimeoutError:
        return f"no answer within {within_seconds:g}s"
    except Exception as error:  # any failure means "not ready"; the driver's own words say which
        return describe(error)
    return ""


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


class StartupIndexes:
    """The indexes a starting replica ensures, retried until it succeeds.

    In the background, not before the server starts: a database that is down or not reachable yet
    leaves the pod alive and not ready (the readiness check reports why), instead of crash-looping
    into ever longer restart back-offs; it becomes ready as soon as the database is there. Without
    the unique index a duplicate SKU would not be refused, so the pod is not ready before.
    """

    def __init__(self, db: Database, *, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self._db = db
        self._first_delay, self._max_delay = first_delay, max_delay
        self.done = False
        self.last_error = ""

    async def run_until_done(self) -> None:
        delay = self._first_delay
        while True:
            try:
                await ensure_indexes(self._db)
            except Exception as error:
                self.last_error = describe(error)
                log.warning("creating the indexes failed, retrying in %gs: %s", delay, self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
            else:
                self.done, self.last_error = True, ""
                return

    def pending(self) -> str:
        """'' once the indexes exist, else why the service is not ready yet."""
        if self.done:
            return ""
        return f"indexes not created yet ({self.last_error or 'creating'})"
