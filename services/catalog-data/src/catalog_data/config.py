"""The service's settings: those of every data service (DataServiceSettings) and the MongoDB URL.

DATABASE_URL and DATABASE_ENGINE are put on the Deployment by the operator (from
spec.database.secretRef and spec.database.engine); everything else here has a default and may be
set through spec.env.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import Field

from platform_contract.data_service import ConfigurationError, DataServiceSettings

SCHEMES = ("mongodb", "mongodb+srv")
# MongoDB's own limits on a database name: no /\. "$ or NUL, under 64 bytes.
_DATABASE_NAME = re.compile(r'[^/\\. "$\x00]{1,63}')


@dataclass(frozen=True, slots=True)
class MongoUrl:
    """DATABASE_URL taken apart: the URL for the driver, the database it names, and a form for logs."""

    url: str
    database: str
    redacted: str


def mongo_url(dsn: str) -> MongoUrl:
    """The DSN as a MongoDB connection string that names its database.

    The database is the URL's path, as in every MongoDB connection string
    (`mongodb://user:pass@host:27017/catalog?authSource=admin`); without one the service would not
    know where its items live, so that is refused rather than guessed. Checked without the network:
    a `mongodb+srv://` URL's DNS records are the driver's business, at connect time.
    """
    if not dsn:
        raise ConfigurationError("DATABASE_URL is not set: the operator sets it from spec.database.secretRef")
    parts = urlsplit(dsn)
    if parts.scheme not in SCHEMES:
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ConfigurationError(f"DATABASE_URL must be a MongoDB URL (mongodb://host:27017/db), not {shown}")
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts or hosts.startswith((":", ",")):
        raise ConfigurationError("DATABASE_URL names no host (mongodb://host:27017/db)")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError("DATABASE_URL names no database: add it as the path (mongodb://host:27017/catalog)")
    if not _DATABASE_NAME.fullmatch(database):
        raise ConfigurationError(
            f"DATABASE_URL names the database {database!r}, which MongoDB does not allow "
            '(1 to 63 characters, none of /\\. "$)'
        )
    userinfo, at, _ = parts.netloc.rpartition("@")
    redacted = dsn
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        redacted = parts._replace(netloc=f"{user}:***@{hosts}").geturl()
    return MongoUrl(url=dsn, database=database, redacted=redacted)


class Settings(DataServiceSettings):
    ENGINE: ClassVar[str] = "mongo"
    ENGINE_ONLY: ClassVar[str] = "catalog-data stores items in MongoDB only"

    db_pool_size: int = Field(20, alias="DB_POOL_SIZE", ge=1)

    def check_database_url(self) -> None:
        self.mongo_url()

    def mongo_url(self) -> MongoUrl:
        return mongo_url(self.database_url)
