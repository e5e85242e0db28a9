"""What the data services (type data) do the same way, whichever database they keep (extras
`fastapi` and `serve`): their common settings, starting up while the database may not be there
yet, readiness, the domain errors' HTTP shapes, the probes, and `python -m <service>`'s start.

A data service keeps here only what is its own: the database URL it accepts, the step its
replicas run at startup (migrations, indexes), its routes and its errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field, ValidationError, field_validator

from platform_contract import PlatformSettings, serving
from platform_contract.domain import InvalidField, KeyTaken, RecordNotFound
from platform_contract.telemetry import setup_tracing
from platform_contract.telemetry.logs import configure_logging
from platform_contract.telemetry.metrics import HttpMetrics, new_registry
from platform_contract.telemetry.web import instrument_app

ReadyCheck = Callable[[], Awaitable[str]]  # '' when ready, else the reason
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class ConfigurationError(RuntimeError):
    """Settings the service cannot run with; the message says what to change."""


class DataServiceSettings(PlatformSettings):
    """The platform's settings plus the database and the knobs every data service has.

    DATABASE_URL and DATABASE_ENGINE are put on the Deployment by the operator; everything else
    has a default and may be set through spec.env. A subclass names its one engine (ENGINE), says
    what it keeps there (ENGINE_ONLY, the start of the message that refuses another engine), and
    checks its DATABASE_URL in check_database_url."""

    ENGINE: ClassVar[str]
    ENGINE_ONLY: ClassVar[str]  # e.g. "users-data stores users in PostgreSQL only"

    database_url: str = Field("", alias="DATABASE_URL")
    database_engine: str = Field("", alias="DATABASE_ENGINE", validate_default=True)

    # the service's own settings (spec.env)
    migrate_on_startup: bool = Field(True, alias="MIGRATE_ON_STARTUP")
    http_host: str = Field("0.0.0.0", alias="HTTP_HOST")  # noqa: S104  # nosec B104 - a pod listens on its own IP
    http_port: int = Field(8000, alias="HTTP_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    db_pool_size: int = Field(5, alias="DB_POOL_SIZE", ge=1)
    db_connect_timeout_seconds: float = Field(5.0, alias="DB_CONNECT_TIMEOUT_SECONDS", gt=0)
    ready_timeout_seconds: float = Field(2.0, alias="READY_TIMEOUT_SECONDS", gt=0)

    @field_validator("database_engine", mode="before")
    @classmethod
    def _one_engine_only(cls, value: object) -> object:
        # The CRD allows every engine for data services in general; each service is written for one.
        if value not in (cls.ENGINE, ""):
            raise ValueError(f"{cls.ENGINE_ONLY}; set spec.database.engine: {cls.ENGINE} (got {value!r})")
        return value or cls.ENGINE

    def check_database_url(self) -> None:
        """Raises ConfigurationError, saying what to change, when DATABASE_URL cannot be used."""
        raise NotImplementedError


SettingsT = TypeVar("SettingsT", bound=DataServiceSettings)


def load_settings(settings_class: type[SettingsT], *, service: str, log: logging.Logger) -> SettingsT | None:
    """The settings from the environment, DATABASE_URL checked, and logging configured by them;
    None, with the reason logged (as JSON, under `service`), when the service cannot run with them."""
    try:
        settings = settings_class()
        settings.check_database_url()
    except (ValidationError, ConfigurationError) as error:
        configure_logging(service)
        log.error("invalid settings: %s", error)
        return None
    configure_logging(settings.service_name, settings.log_level)
    return settings


def serve(settings: SettingsT, build_app: Callable[[SettingsT], FastAPI]) -> None:
    """Traces, builds and serves the app until SIGTERM; the lifespan's shutdown closes the pool."""
    setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    serving.serve(build_app(settings), host=settings.http_host, port=settings.http_port)


async def answers_within(
    seconds: float, ask: Callable[[], Awaitable[object]], describe: Callable[[BaseException], str]
) -> str:
    """'' when `ask` (a trivial query) succeeds within `seconds`, else why not, in the driver's words
    (`describe`, which leaves credentials out)."""
    try:
        async with asyncio.timeout(seconds):
            await ask()
    except TimeoutError:
        return f"no answer within {seconds:g}s"
    except Exception as error:  # any failure means "not ready"; the driver's own words say which
        return describe(error)
    return ""


class StartupStep:
    """What a starting replica must have done to the database before it is ready (migrations,
    indexes), retried until it succeeds.

    In the background, not before the server starts: a database that is down or not there yet
    leaves the pod alive and not ready (the readiness check reports why), instead of crash-looping
    into ever longer restart back-offs; it becomes ready as soon as the database is there.
    """

    def __init__(
        self,
        run: Callable[[], Awaitable[object]],
        *,
        describe: Callable[[BaseException], str],
        log: logging.Logger,
        failed: str,  # "database migrations failed"
        not_done: str,  # "schema not migrated yet"
        running: str,  # "migrating"
        first_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> None:
        self._run, self._describe, self._log = run, describe, log
        self._failed, self._not_done, self._running = failed, not_done, running
        self._first_delay, self._max_delay = first_delay, max_delay
        self.done = False
        self.last_error = ""

    async def run_until_done(self) -> None:
        delay = self._first_delay
        while True:
            try:
                await self._run()
            except Exception as error:
                self.last_error = self._describe(error)
                self._log.warning("%s, retrying in %gs: %s", self._failed, delay, self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
            else:
                self.done, self.last_error = True, ""
                return

    def pending(self) -> str:
        """'' once the step is done, else why the service is not ready yet."""
        if self.done:
            return ""
        return f"{self._not_done} ({self.last_error or self._running})"


@dataclass(frozen=True)
class Wiring:
    """What the app of a data service gets from its bootstrap besides its repository."""

    ready_check: ReadyCheck
    lifespan: Lifespan
    metrics: HttpMetrics


def database_wiring(
    startup: StartupStep | None, *, ping: Callable[[], Awaitable[str]], close: Callable[[], object]
) -> Wiring:
    """The readiness check (the startup step is done and the database answers), the lifespan (runs
    the startup step in the background; at shutdown stops it and closes the pool) and the metrics."""

    async def ready() -> str:
        pending = startup.pending() if startup else ""
        return pending or await ping()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(startup.run_until_done()) if startup else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            closed = close()
            if inspect.isawaitable(closed):
                await closed

    # A registry per app (not the global one), so that every app built in one process counts alone.
    return Wiring(ready, lifespan, HttpMetrics(new_registry()))


def data_app(settings: PlatformSettings, wiring: Wiring, *, title: str) -> FastAPI:
    """The app named `title` (its access log: `<title as a package>.access`) with its telemetry,
    and the domain's errors (platform_contract.domain) as HTTP: RecordNotFound 404, KeyTaken 409
    (both with the error's message as `detail`), and InvalidField 422 in the shape of FastAPI's own
    validation errors."""
    app = FastAPI(title=title, version="0.1.0", lifespan=wiring.lifespan)
    access_log = f"{title.replace('-', '_')}.access"
    instrument_app(app, request_id_header=settings.request_id_header, metrics=wiring.metrics, access_log=access_log)

    async def as_not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)

    async def as_conflict(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    async def as_invalid(_: Request, error: Any) -> JSONResponse:  # an InvalidField
        # the same shape as FastAPI's own validation errors, so clients parse one format
        detail = [{"loc": ["body", error.field], "msg": error.problem, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    app.add_exception_handler(RecordNotFound, as_not_found)
    app.add_exception_handler(KeyTaken, as_conflict)
    app.add_exception_handler(InvalidField, as_invalid)
    return app


def add_probes(app: FastAPI, wiring: Wiring, *, ready_description: str) -> None:
    """/health, /ready (`ready_description` says what it checks) and /metrics."""
    ready_check, metrics = wiring.ready_check, wiring.metrics

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process serves requests. Never looks at the database: a database outage
        must not get every replica restarted."""
        return {"status": "ok"}

    @app.get("/ready", description=ready_description)
    async def ready() -> JSONResponse:
        reason = await ready_check()
        if reason:
            return JSONResponse(
                {"status": "unavailable", "database": reason}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        return JSONResponse({"status": "ready", "database": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
