"""Settings: what the service accepts in DATABASE_URL and DATABASE_ENGINE (pure, no database)."""

from __future__ import annotations

import pytest
from users_data_testkit import UsersData

from platform_contract.testing.data_service import DataSettingsContract
from users_data.config import ConfigurationError, async_database_url


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


class TestUsersSettings(UsersData, DataSettingsContract):
    """What every data service takes from the operator, for users."""
