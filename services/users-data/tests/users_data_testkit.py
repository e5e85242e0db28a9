"""users-data's names for the data services' shared tests (platform_contract.testing.data_service)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI

from platform_contract.testing.data_service import DataService
from users_data.bootstrap import build_app
from users_data.config import Settings


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.org"


class UsersData(DataService):
    settings_class = Settings
    service = "users-data"
    collection = "/users"
    id_route = "/users/{user_id}"
    key = "email"
    taken = "a user with email {} already exists"
    noun = "user"
    example_url = "postgresql://u:p@users-db:5432/users"
    other_engine = "mongo"
    unreachable_url = "postgresql://platform:secret@127.0.0.1:{port}/platform"
    refusal = r"PostgreSQL only; set spec\.database\.engine: postgres"

    def new_key(self) -> str:
        return new_email()

    def other_case(self, key: str) -> str:
        return key.upper()

    def body(self, key: str) -> dict[str, Any]:
        return {"email": key, "name": "Ann"}

    def build_app(self, settings: Settings) -> FastAPI:
        return build_app(settings)

    def check_example_url(self, settings: Settings) -> None:
        assert settings.async_database_url().host == "users-db"
