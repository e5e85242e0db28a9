"""The service's settings: those of every data service (DataServiceSettings) and the PostgreSQL URL.

DATABASE_URL and DATABASE_ENGINE are put on the Deployment by the operator (DATABASE_URL from the
database it provisions, spec.database.provision, or from spec.database.secretRef; DATABASE_ENGINE
from spec.database.engine); everything else here has a default and may be set through spec.env.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from platform_contract.data_service import ConfigurationError, DataServiceSettings

ASYNC_DRIVER = "postgresql+asyncpg"


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


class Settings(DataServiceSettings):
    ENGINE: ClassVar[str] = "postgres"
    ENGINE_ONLY: ClassVar[str] = "users-data stores users in PostgreSQL only"

    def check_database_url(self) -> None:
        self.async_database_url()

    def async_database_url(self) -> URL:
        return async_database_url(self.database_url)
