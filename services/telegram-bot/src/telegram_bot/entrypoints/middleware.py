"""Around every update: a request id, a trace span, metrics, duplicate suppression, and a count of
updates in flight so that shutdown can wait for them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from platform_contract import telemetry
from telegram_bot.adapters.update_log import UpdateLog
from telegram_bot.observability import UPDATE_SECONDS, UPDATES

log = logging.getLogger(__name__)
tracer = trace.get_tracer("telegram_bot")


class InFlight:
    """How many updates are being handled right now."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drained(self, within_seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), within_seconds)
        except TimeoutError:
            log.warning("shutting down with %d updates still in flight", self._count)
            return False
        return True


class UpdateMiddleware(BaseMiddleware):
    def __init__(self, update_log: UpdateLog, in_flight: InFlight) -> None:
        self._update_log = update_log
        self._in_flight = in_flight

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):  # registered on dp.update only; anything else passes through
            return await handler(event, data)
        bot: Bot = data["bot"]
        kind = event.event_type
        # A webhook call may bring a request id (the ingress's); a polled update gets a new one.
        token = telemetry.request_id.set(telemetry.request_id.get() or telemetry.new_request_id())
        extra = {"update_id": event.update_id, "update_type": kind}
        started = time.perf_counter()
        try:
            async with self._in_flight.track():
                with tracer.start_as_current_span(
                    "telegram.update",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={"telegram.update_id": event.update_id, "telegram.update_type": kind},
                ) as span:
                    if await self._update_log.seen(bot.id, event.update_id):
                        UPDATES.labels(kind, "duplicate").inc()
                        log.info("update delivered again; already handled", extra=extra)
                        return None
                    try:
                        result = await handler(event, data)
                    except Exception as exc:
                        UPDATES.labels(kind, "error").inc()
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR))
                        log.exception("update failed", extra=extra)
                        raise
                    await self._update_log.remember(bot.id, event.update_id)
                    UPDATES.labels(kind, "handled").inc()
                    log.info("update handled", extra=extra)
                    return result
        finally:
            UPDATE_SECONDS.labels(kind).observe(time.perf_counter() - started)
            telemetry.request_id.reset(token)
