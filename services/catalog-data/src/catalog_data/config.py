"""The service's settings: the platform's (PlatformSettings) plus the database and its own knobs.

DATABASE_URL and DATABASE_ENGINE are put on the Deployment by the operator (from
spec.database.secretRef and spec.database.engine); everything else here has a default and may be
set through spec.env.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from platform_contract import PlatformSettings

SCHEMES = ("mongodb", "mongodb+srv")
# MongoDB's own limits on a database name: no /\. "$ or NUL, under 64 bytes.
_DATABASE_NAME = re.compile(r'[^/\\. "$\x00]{1,63}')


class ConfigurationError(RuntimeError):
    """Settings the service cannot run with; the message says what to change."""


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


class Settings(PlatformSettings):
    database_url: str = Field("", alias="DATABASE_URL")
    database_engine: Literal["mongo"] = Field("mongo", alias="DATABASE_ENGINE")

    # the service's own settings (spec.env)
    migrate_on_startup: bool = Field(True, alias="MIGRATE_ON_STARTUP")
    http_host: str = Field("0.0.0.0", alias="HTTP_HOST")  # noqa: S104  # nosec B104 - a pod listens on its own IP
    http_port: int = Field(8000, alias="HTTP_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    db_pool_size: int = Field(20, alias="DB_POOL_SIZE", ge=1)
    db_connect_timeout_seconds: float = Field(5.0, alias="DB_CONNECT_TIMEOUT_SECONDS", gt=0)
    ready_timeout_seconds: float = Field(2.0, alias="READY_TIMEOUT_SECONDS", gt=0)

    @field_validator("database_engine", mode="before")
    @classmethod
    def _mongo_only(cls, value: object) -> object:
        # The CRD allows postgres for data services in general; this one is written for MongoDB.
        if value not in ("mongo", ""):
            raise ValueError(
                f"catalog-data stores items in MongoDB only; set spec.database.engine: mongo (got {value!r})"
            )
        return value or "mongo"

    def mongo_url(self) -> MongoUrl:
        return mongo_url(self.database_url)
