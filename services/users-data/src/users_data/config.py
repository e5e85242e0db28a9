"""The service's settings: the platform's (PlatformSettings) plus the database and its own knobs.

DATABASE_URL and DATABASE_ENGINE are put on the Deployment by the operator (DATABASE_URL from the
database it provisions, spec.database.provision, or from spec.database.secretRef; DATABASE_ENGINE
from spec.database.engine); everything else here has a default and may be set through spec.env.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from platform_contract import PlatformSettings

ASYNC_DRIVER = "postgresql+asyncpg"


class ConfigurationError(RuntimeError):
    """Settings the service cannot run with; the message says what to change."""


def async_database_url(dsn: str) -> URL:
    """The DSN as SQLAlchemy's asyncpg URL.

    A Secret often holds the libpq form (`postgresql://...?sslmode=require`) that other tools share,
    so the driver is rewritten to asyncpg and `sslmode`, which asyncpg does not know, becomes `ssl`.
    """
    if not dsn:
        raise ConfigurationError(
            "DATABASE_URL is not set: the operator sets it from spec.database (provision: true, or secretRef)"
        )
    try:
        url = make_url(dsn)
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL is not a database URL (postgresql://user:pass@host:5432/db)") from None
    backend = url.drivername.split("+", 1)[0]
    if backend not in {"postgresql", "postgres"}:
        raise ConfigurationError(f"DATABASE_URL must be a PostgreSQL URL, not {backend}://")
    url = url.set(drivername=ASYNC_DRIVER)
    if "sslmode" in url.query:
        sslmode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"])
        if "ssl" not in url.query:
            url = url.update_query_dict({"ssl": sslmode})
    return url


class Settings(PlatformSettings):
    database_url: str = Field("", alias="DATABASE_URL")
    database_engine: Literal["postgres"] = Field("postgres", alias="DATABASE_ENGINE")

    # the service's own settings (spec.env)
    migrate_on_startup: bool = Field(True, alias="MIGRATE_ON_STARTUP")
    http_host: str = Field("0.0.0.0", alias="HTTP_HOST")  # noqa: S104 - a pod listens on its own IP
    http_port: int = Field(8000, alias="HTTP_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    db_pool_size: int = Field(5, alias="DB_POOL_SIZE", ge=1)
    db_connect_timeout_seconds: float = Field(5.0, alias="DB_CONNECT_TIMEOUT_SECONDS", gt=0)
    ready_timeout_seconds: float = Field(2.0, alias="READY_TIMEOUT_SECONDS", gt=0)

    @field_validator("database_engine", mode="before")
    @classmethod
    def _postgres_only(cls, value: object) -> object:
        # The CRD allows mongo for data services in general; this one is written for PostgreSQL.
        if value not in ("postgres", ""):
            raise ValueError(
                f"users-data stores users in PostgreSQL only; set spec.database.engine: postgres (got {value!r})"
            )
        return value or "postgres"

    def async_database_url(self) -> URL:
        return async_database_url(self.database_url)
