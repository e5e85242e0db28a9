"""Wires the service: settings -> engine -> unit of work, migrations, readiness check, metrics -> the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from platform_contract.telemetry.metrics import HttpMetrics, new_registry
from users_data.adapters import database
from users_data.config import Settings
from users_data.entrypoints.api import create_app
from users_data.service_layer.unit_of_work import UnitOfWork


def build_app(settings: Settings) -> FastAPI:
    engine = database.create_engine(settings)  # connects lazily: building the app needs no database
    # A registry per app (not the global one), so that every app built in one process counts alone.
    registry = new_registry()
    migrations = database.StartupMigrations(engine) if settings.migrate_on_startup else None

    async def ready() -> str:
        pending = migrations.pending() if migrations else ""
        return pending or await database.ping(engine, settings.ready_timeout_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(migrations.run_until_done()) if migrations else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await engine.dispose()

    return create_app(
        settings,
        unit_of_work=partial(UnitOfWork, engine),
        ready_check=ready,
        metrics=HttpMetrics(registry),
        lifespan=lifespan,
    )
