"""Settings: what the service accepts in DATABASE_URL and DATABASE_ENGINE (pure, no database)."""

from __future__ import annotations

import pytest
from catalog_data_testkit import CatalogData

from catalog_data.config import ConfigurationError, mongo_url
from platform_contract.testing.data_service import DataSettingsContract


@pytest.mark.parametrize(
    ("dsn", "database"),
    [
        ("mongodb://db:27017/catalog", "catalog"),
        ("mongodb://u:p@db:27017/catalog?authSource=admin", "catalog"),
        ("mongodb://db-0:27017,db-1:27017/shop-items?replicaSet=rs0", "shop-items"),
        ("mongodb+srv://u:p@cluster.example.org/catalog", "catalog"),  # no DNS lookup here
        ("mongodb://db/cat%20alog", None),
    ],
)
def test_database_url_names_the_database(dsn: str, database: str | None) -> None:
    if database is None:
        with pytest.raises(ConfigurationError, match="does not allow"):
            mongo_url(dsn)
        return
    url = mongo_url(dsn)
    assert url.database == database
    assert url.url == dsn


def test_the_password_never_reaches_the_logged_form() -> None:
    url = mongo_url("mongodb://catalog:s3cr%40t@db:27017/catalog?authSource=admin")
    assert url.redacted == "mongodb://catalog:***@db:27017/catalog?authSource=admin"
    assert mongo_url("mongodb://db:27017/catalog").redacted == "mongodb://db:27017/catalog"


def test_missing_database_url_says_where_it_comes_from() -> None:
    with pytest.raises(ConfigurationError, match=r"DATABASE_URL is not set.*spec\.database\.secretRef"):
        mongo_url("")


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://u:p@db:5432/users", "must be a MongoDB URL.*not postgresql://"),
        ("db:27017/catalog", "must be a MongoDB URL"),
        ("mongodb:///catalog", "names no host"),
        ("mongodb://u:p@/catalog", "names no host"),
        ("mongodb://db:27017", "names no database"),
        ("mongodb://db:27017/", "names no database"),
        ("mongodb://db:27017/cat.alog", "does not allow"),
        (f"mongodb://db:27017/{'x' * 64}", "does not allow"),
    ],
)
def test_a_database_url_the_service_cannot_use_is_refused(dsn: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        mongo_url(dsn)


class TestCatalogSettings(CatalogData, DataSettingsContract):
    """What every data service takes from the operator, for catalog items."""
