"""Settings: what the service accepts in DATABASE_URL and DATABASE_ENGINE (pure, no database)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from users_data.config import ConfigurationError, Settings, async_database_url


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql+asyncpg://u:p@db:5432/users", "postgresql+asyncpg://u:p@db:5432/users"),
        ("postgresql://u:p@db:5432/users", "postgresql+asyncpg://u:p@db:5432/users"),
        ("postgres://u:p@db/users", "postgresql+asyncpg://u:p@db/users"),
        ("postgresql+psycopg://u:p@db/users", "postgresql+asyncpg://u:p@db/users"),
        ("postgresql://u:p@db/users?sslmode=require", "postgresql+asyncpg://u:p@db/users?ssl=require"),
        ("postgresql://u:p%40x@db/users", "postgresql+asyncpg://u:p%40x@db/users"),
    ],
)
def test_database_url_becomes_an_asyncpg_url(dsn: str, expected: str) -> None:
    assert async_database_url(dsn).render_as_string(hide_password=False) == expected


def test_missing_database_url_says_where_it_comes_from() -> None:
    with pytest.raises(ConfigurationError, match=r"DATABASE_URL is not set.*\(provision: true, or secretRef\)"):
        async_database_url("")


@pytest.mark.parametrize("dsn", ["mysql://u:p@db/users", "mongodb://db/users", "not a url"])
def test_a_database_url_that_is_not_postgres_is_refused(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        async_database_url(dsn)


def test_settings_read_the_operators_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@users-db:5432/users")
    monkeypatch.setenv("DATABASE_ENGINE", "postgres")
    monkeypatch.setenv("REQUEST_ID_HEADER", "X-Correlation-ID")
    monkeypatch.setenv("SERVICE_NAME", "users-data")

    settings = Settings()

    assert settings.async_database_url().host == "users-db"
    assert settings.request_id_header == "X-Correlation-ID"
    assert settings.service_name == "users-data"
    assert settings.http_port == 8000
    assert settings.migrate_on_startup is True


def test_migrations_at_startup_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATE_ON_STARTUP", "false")
    assert Settings().migrate_on_startup is False


def test_mongo_engine_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_ENGINE", "mongo")
    with pytest.raises(ValidationError, match=r"PostgreSQL only; set spec\.database\.engine: postgres"):
        Settings()
