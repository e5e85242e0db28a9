"""The HTTP API: users CRUD plus /health, /ready and /metrics. Routes translate HTTP to the service
layer and domain errors to status codes; they hold no rule of their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict

from platform_contract.data_service import Wiring, add_probes, data_app
from platform_contract.records import Records, add_record_routes
from users_data.config import Settings
from users_data.domain.model import TELEGRAM_ID_MAX, User
from users_data.service_layer import services
from users_data.service_layer.unit_of_work import UnitOfWork


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    name: str


class TelegramAccount(BaseModel):
    """What a Telegram account tells about its user: a name (no email)."""

    model_config = ConfigDict(extra="forbid")
    name: str


class UserChanges(BaseModel):
    """Only the fields present change; a field left out (or null) keeps its value."""

    model_config = ConfigDict(extra="forbid")
    email: str | None = None
    name: str | None = None


class UserOut(BaseModel):
    id: uuid.UUID
    email: str | None
    name: str
    created_at: datetime
    telegram_id: int | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id, email=user.email, name=user.name, created_at=user.created_at, telegram_id=user.telegram_id
        )


def _unit_of_work(request: Request) -> UnitOfWork:
    return request.app.state.unit_of_work()


def create_app(settings: Settings, *, unit_of_work: Callable[[], UnitOfWork], wiring: Wiring) -> FastAPI:
    app = data_app(settings, wiring, title="users-data")
    app.state.unit_of_work = unit_of_work
    add_record_routes(
        app,
        Records(
            noun="user",
            key="email",
            key_description="exact address, any case",
            new=NewUser,
            changes=UserChanges,
            out=UserOut,
            store=_unit_of_work,
            create=services.register_user,
            get=services.get_user,
            find=services.find_users,
            change=services.change_user,
            remove=services.remove_user,
        ),
    )

    @app.put(
        "/users/by-telegram/{telegram_id}",
        response_model=UserOut,
        responses={201: {"model": UserOut, "description": "no user had this Telegram id: made now"}},
    )
    async def user_for_telegram(
        telegram_id: Annotated[int, Path(ge=1, le=TELEGRAM_ID_MAX)],
        body: TelegramAccount,
        uow: Annotated[UnitOfWork, Depends(_unit_of_work)],
        response: Response,
    ) -> UserOut:
        """Find-or-create: the user of this Telegram account (200), or a new one with `name` (201)."""
        user, created = await services.user_for_telegram(uow, telegram_id=telegram_id, name=body.name)
        if created:
            response.status_code = status.HTTP_201_CREATED
            response.headers["Location"] = f"/users/{user.id}"
        return UserOut.of(user)

    add_probes(
        app,
        wiring,
        ready_description="Readiness: the database answers; without it this service can do nothing useful.",
    )
    return app
