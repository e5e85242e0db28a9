"""The HTTP API: routes, and how failures become status codes (the request id, spans, metrics and
access log of every request are platform_contract.telemetry.web's)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orders_api.domain.model import TELEGRAM_ID_MAX, CreateOrder, Customer, Order, TelegramAccount
from orders_api.observability import Metrics
from orders_api.service_layer import idempotency
from orders_api.service_layer.ports import DependencyUnavailable, UnknownUser, UserRefused
from platform_contract.telemetry.web import instrument_app

if TYPE_CHECKING:
    from orders_api.bootstrap import Container

log = logging.getLogger(__name__)

ORDER_ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
TELEGRAM_ID = Annotated[int, Path(ge=1, le=TELEGRAM_ID_MAX)]


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await container.start()
        try:
            yield
        finally:
            await container.aclose()

    app = FastAPI(title="orders-api", version="0.1.0", lifespan=lifespan)
    instrument_app(
        app,
        request_id_header=container.settings.request_id_header,
        metrics=container.metrics.http,
        access_log="orders_api.access",
    )
    _add_error_handlers(app, container.metrics)
    service, metrics = container.service, container.metrics

    @app.post(
        "/orders",
        status_code=201,
        response_model=Order,
        responses={
            400: {"description": "Idempotency-Key missing or malformed"},
            409: {"description": "a request with the same Idempotency-Key is in progress"},
            422: {"description": "invalid body, unknown user, or the key reused with another body"},
            503: {"description": "users-data, Redis or RabbitMQ unavailable; retry with the same key"},
        },
    )
    async def create_order(
        order: CreateOrder,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Response:
        key = idempotency.validate_key(idempotency_key)
        outcome = await service.create(order, key)
        headers = {"Location": f"/orders/{outcome.body['id']}"}
        if outcome.replayed:
            metrics.idempotent_replays.inc()
            headers["Idempotent-Replayed"] = "true"
        else:
            metrics.orders_created.inc()
            log.info("order placed", extra={"order_id": outcome.body["id"]})
        return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)

    @app.get("/orders/{order_id}", response_model=Order, responses={404: {"description": "no such order"}})
    async def get_order(order_id: ORDER_ID) -> Any:
        found = await service.get(order_id)
        if found is None:
            return JSONResponse({"detail": f"order {order_id} not found"}, status_code=404)
        return found

    @app.put(
        "/users/by-telegram/{telegram_id}",
        response_model=Customer,
        responses={
            201: {"model": Customer, "description": "users-data had no user for this account: made now"},
            422: {"description": "invalid id or body, or users-data refused the name"},
            503: {"description": "users-data unavailable; asking again is harmless"},
        },
    )
    async def customer_for_telegram(telegram_id: TELEGRAM_ID, account: TelegramAccount) -> Response:
        """The users-data user of a Telegram account (200), made with `name` on first use (201):
        a bot places orders with its `id`, since users-data does not know Telegram's ids."""
        customer, created = await service.customer_for_telegram(telegram_id, account)
        return JSONResponse(customer.model_dump(mode="json"), status_code=201 if created else 200)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        checks = await container.readiness()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def problem(status: int, exc: Exception, **headers: str) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers or None)

    @app.exception_handler(idempotency.InvalidIdempotencyKey)
    async def invalid_key(_: Request, exc: idempotency.InvalidIdempotencyKey) -> JSONResponse:
        return problem(400, exc)

    @app.exception_handler(idempotency.IdempotencyKeyInUse)
    async def key_in_use(_: Request, exc: idempotency.IdempotencyKeyInUse) -> JSONResponse:
        return problem(409, exc, **{"Retry-After": "1"})

    @app.exception_handler(idempotency.IdempotencyKeyReused)
    async def key_reused(_: Request, exc: idempotency.IdempotencyKeyReused) -> JSONResponse:
        return problem(422, exc)

    @app.exception_handler(UnknownUser)
    async def unknown_user(_: Request, exc: UnknownUser) -> JSONResponse:
        return problem(422, exc)

    @app.exception_handler(UserRefused)
    async def user_refused(_: Request, exc: UserRefused) -> JSONResponse:
        return problem(422, exc)

    @app.exception_handler(DependencyUnavailable)
    async def unavailable(_: Request, exc: DependencyUnavailable) -> JSONResponse:
        metrics.dependency_failures.labels(exc.dependency).inc()
        log.warning("%s unavailable: %s", exc.dependency, exc)
        return problem(503, exc, **{"Retry-After": "5"})
