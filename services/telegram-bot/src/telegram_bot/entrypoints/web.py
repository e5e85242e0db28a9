"""The bot's HTTP side on one port: /health, /ready, /metrics, and in webhook mode Telegram's POSTs.

Polling bots serve it too, beside the dispatcher in the same event loop: the kubelet probes it
and Prometheus scrapes it whatever the mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from platform_contract import telemetry
from telegram_bot.bootstrap import BotApp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_web_app(app: BotApp) -> web.Application:
    header = app.settings.request_id_header

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = telemetry.accept_request_id(request.headers.get(header))
        token = telemetry.request_id.set(rid)
        try:
            response = await handler(request)
        finally:
            telemetry.request_id.reset(token)
        response.headers[header] = rid
        return response

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        checks = await app.check_dependencies()
        ok = all(v == "ok" for v in checks.values())
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app = web.Application(middlewares=[request_id])
    web_app.router.add_get("/health", health)
    web_app.router.add_get("/ready", ready)
    web_app.router.add_get("/metrics", metrics)
    if app.settings.bot_mode == "webhook":
        webhook = SimpleRequestHandler(
            app.dispatcher,
            app.bot,
            # Answer Telegram only once the update is handled: a failure gives a 500 and
            # Telegram delivers the update again, instead of the update being lost.
            handle_in_background=False,
            secret_token=app.settings.webhook_secret,
        )
        # Not webhook.register(): it would close the bot's session at shutdown while updates
        # are still being handled; the app closes it after the server has drained.
        web_app.router.add_post(app.settings.webhook_path, webhook.handle)
    return web_app
