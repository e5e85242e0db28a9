"""`python -m telegram_bot`: one process, one event loop, the bot and its HTTP server in it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from platform_contract.telemetry import setup_tracing
from platform_contract.telemetry.logs import configure_logging
from telegram_bot.config import Settings

if TYPE_CHECKING:
    from telegram_bot.bootstrap import BotApp

log = logging.getLogger("telegram_bot")


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serves until `stop` is set (SIGTERM or SIGINT when not given), then drains and closes."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    # Imported only now: aiogram's types take seconds to import, and a pod whose settings are
    # invalid says so (main) before paying for them.
    from telegram_bot.bootstrap import bootstrap
    from telegram_bot.entrypoints.web import build_web_app

    app = bootstrap(settings)
    runner = web.AppRunner(build_web_app(app), shutdown_timeout=settings.shutdown_grace_seconds)
    await runner.setup()
    try:
        # all interfaces: the kubelet's probes and Prometheus come from outside the Pod
        await web.TCPSite(runner, "0.0.0.0", settings.http_port).start()  # noqa: S104  # nosec B104
        log.info("serving /health /ready /metrics on :%d (%s mode)", settings.http_port, settings.bot_mode)
        if settings.bot_mode == "webhook":
            await _serve_webhook(app, stop)
        else:
            await _serve_polling(app, stop)
    finally:
        app.ready = False
        # In webhook mode this waits (up to the grace period) for the updates being handled.
        await runner.cleanup()
        await app.close()
        log.info("stopped")


async def _serve_webhook(app: BotApp, stop: asyncio.Event) -> None:
    settings = app.settings
    await app.bot.set_webhook(
        url=settings.bot_webhook_url,
        secret_token=settings.webhook_secret,
        allowed_updates=app.dispatcher.resolve_used_update_types(),
    )
    log.info("webhook set; receiving updates at %s", settings.webhook_path)
    app.ready = True
    await stop.wait()
    log.info("stopping: no new updates are accepted")
    app.ready = False


async def _serve_polling(app: BotApp, stop: asyncio.Event) -> None:
    dispatcher = app.dispatcher
    # getUpdates is refused while a webhook is set (a bot switched from webhook mode)
    await app.bot.delete_webhook(drop_pending_updates=False)

    async def started() -> None:
        app.ready = True

    dispatcher.startup.register(started)
    polling = asyncio.create_task(dispatcher.start_polling(app.bot, handle_signals=False, close_bot_session=False))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    app.ready = False
    stopping.cancel()
    if not polling.done():
        log.info("stopping: polling ends, updates already fetched are finished")
        try:
            await dispatcher.stop_polling()
        except RuntimeError:  # stopped before polling had begun
            polling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await polling  # re-raises what made polling fail, if it did
    await app.in_flight.drained(app.settings.shutdown_grace_seconds)


def setup_logging(service: str, level: str) -> None:
    configure_logging(service, level, sys.stdout)
    # One line per health probe is noise; errors still show.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiogram's own line per update says less than ours (no request or trace id)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        setup_logging("telegram-bot", "INFO")
        log.error("invalid settings: %s", "; ".join(e["msg"] for e in exc.errors()))
        sys.exit(2)
    setup_logging(settings.service_name, settings.log_level)
    provider = setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    try:
        asyncio.run(run(settings))
    except Exception:
        # e.g. Telegram refused the token or the webhook: the Pod restarts and says why
        log.exception("the bot stopped on an error")
        sys.exit(1)
    finally:
        provider.shutdown()  # exports the spans still buffered
