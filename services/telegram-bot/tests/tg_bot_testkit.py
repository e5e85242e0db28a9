"""What the bot's tests run against: the bot as `python -m telegram_bot`, as in its container.

Around it:
- Redis is real (hack/backends.sh), with the bot's ACL user provisioned by the operator's own
  adapter, and the bot's environment built by the operator's builders: it reads exactly what a
  Deployment would give it, and Redis enforces the same limits.
- Telegram's Bot API is the one outside service we stand in for (FakeTelegram, a local server).
- orders-api is another service of this project, written separately: FakeOrdersApi is a test
  double of its HTTP contract (PUT /users/by-telegram/{telegram_id}, POST /orders with
  Idempotency-Key, GET /orders/{id}).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from platform_operator import builders, cache
from platform_operator.model import PlatformService
from platform_operator.redis_store import RedisStore

BOT_ID = 424242
TOKEN = f"{BOT_ID}:test-token-{secrets.token_hex(4)}"
NAMESPACE = "bot-tests"
WEBHOOK_HOST, WEBHOOK_PATH = "bot.example.test", "/telegram/webhook"


def platform_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: start this suite's Redis with `hack/backends.sh up` and "
            '`eval "$(hack/backends.sh env)"` (see services/telegram-bot/README.md)',
            pytrace=False,
        )
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def eventually(check: Callable[[], Any], within: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Telegram's Bot API, faked


class FakeTelegram:
    """Just enough of the Bot API for this bot: getMe, getUpdates (long poll over a queue, updates
    confirmed by `offset` as Telegram does), sendMessage (recorded), setWebhook/deleteWebhook."""

    def __init__(self) -> None:
        self.url = ""
        self.pending: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._arrived = asyncio.Event()
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)

    # -- what a test does
    def message(self, chat_id: int, text: str) -> dict[str, Any]:
        """A user's private message, as the update Telegram would deliver."""
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
            "text": text,
        }
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {"update_id": next(self._update_ids), "message": msg}

    def deliver(self, *updates: dict[str, Any]) -> None:
        """Queues updates for the next getUpdates (polling mode)."""
        self.pending.extend(updates)
        self._arrived.set()

    def replies(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    async def wait_replies(self, chat_id: int, count: int, within: float = 10) -> list[str]:
        await eventually(lambda: len(self.replies(chat_id)) >= count, within, f"{count} replies to chat {chat_id}")
        return self.replies(chat_id)

    async def say(self, chat_id: int, text: str) -> str:
        """Sends `text` by polling and returns the bot's reply to it."""
        before = len(self.replies(chat_id))
        self.deliver(self.message(chat_id, text))
        return (await self.wait_replies(chat_id, before + 1))[before]

    def called(self, method: str) -> list[dict[str, str]]:
        return [params for name, params in self.calls if name == method]

    # -- the server
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = {k: str(v) for k, v in (await request.post()).items()}
        self.calls.append((method, params))
        if method == "getMe":
            return _ok({"id": BOT_ID, "is_bot": True, "first_name": "Orders", "username": "orders_test_bot"})
        if method == "getUpdates":
            return _ok(await self._get_updates(int(params.get("offset", 0)), float(params.get("timeout", 0))))
        if method == "sendMessage":
            chat_id = int(params["chat_id"])
            self.sent.append({"chat_id": chat_id, "text": params["text"], "reply_markup": params.get("reply_markup")})
            message = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": params["text"],
            }
            return _ok(message)
        if method in ("setWebhook", "deleteWebhook"):
            return _ok(True)
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _get_updates(self, offset: int, long_poll: float) -> list[dict[str, Any]]:
        # Updates below the offset are confirmed: Telegram forgets them.
        self.pending = [u for u in self.pending if u["update_id"] >= offset]
        if not self.pending:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), long_poll)
        return list(self.pending)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


# --------------------------------------------------------------------------------------------
# orders-api, as a test double of its contract


class FakeOrdersApi:
    """orders-api's contract: PUT /users/by-telegram/{telegram_id} {name} -> 201 and users-data's
    user of that account the first time, 200 and the same user after; POST /orders {user_id,
    item, quantity} with an Idempotency-Key -> 201 and the order (the same order again for a key
    already used), 422 for a user_id users-data does not know (a Telegram id among them);
    GET /orders/{id} -> 200/404."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.users: dict[int, dict[str, Any]] = {}  # by Telegram id
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.delay = 0.0
        self.lose_responses = 0  # create the order, then never answer (the caller times out)
        self.user_answer: tuple[int, str] | None = None  # forced status and detail of the next PUTs

    def reset(self) -> None:
        self.requests.clear()
        self.delay, self.lose_responses, self.user_answer = 0.0, 0, None

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def puts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "PUT"]

    def user_id_of(self, telegram_id: int) -> str:
        return self.users[telegram_id]["id"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/users/by-telegram/{telegram_id}", self._user_for_telegram)
        app.router.add_post("/orders", self._create)
        app.router.add_get("/orders/{id}", self._get)
        return app

    async def _user_for_telegram(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"method": "PUT", "headers": dict(request.headers), "path": request.path, "body": body})
        if self.user_answer is not None:
            status, detail = self.user_answer
            return web.json_response({"detail": detail}, status=status)
        if (
            not re.fullmatch(r"[1-9][0-9]{0,18}", request.match_info["telegram_id"])
            or not str(body.get("name", "")).strip()
        ):
            return web.json_response({"detail": [{"msg": "invalid"}]}, status=422)
        telegram_id = int(request.match_info["telegram_id"])
        created = telegram_id not in self.users
        if created:
            self.users[telegram_id] = {
                "id": str(uuid.uuid4()),
                "name": body["name"].strip(),
                "telegram_id": telegram_id,
                "created_at": datetime.now(UTC).isoformat(),
            }
        return web.json_response(self.users[telegram_id], status=201 if created else 200)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"method": "POST", "headers": dict(request.headers), "body": body})
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"detail": "Idempotency-Key header required"}, status=400)
        if all(u["id"] != body.get("user_id") for u in self.users.values()):
            return web.json_response({"detail": f"user {body.get('user_id')} does not exist in users-data"}, status=422)
        if key not in self.by_key:
            order_id = uuid.uuid4().hex
            self.orders[order_id] = {"id": order_id, **body, "created_at": datetime.now(UTC).isoformat()}
            self.by_key[key] = order_id
        if self.lose_responses:
            self.lose_responses -= 1
            await asyncio.sleep(3)
        await asyncio.sleep(self.delay)
        return web.json_response(self.orders[self.by_key[key]], status=201)

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append({"method": "GET", "headers": dict(request.headers), "path": request.raw_path})
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", request.match_info["id"]):
            return web.json_response({"detail": [{"msg": "String should match pattern"}]}, status=422)
        order = self.orders.get(request.match_info["id"])
        if order is None:
            return web.json_response({"detail": "order not found"}, status=404)
        return web.json_response(order)


# --------------------------------------------------------------------------------------------
# the bot, as its container runs it


class BotProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, wait_ready: bool = True) -> BotProcess:
        self._log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "telegram_bot",
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=self._log,
        )
        try:
            await self.wait_for("/ready" if wait_ready else "/health")
        except BaseException:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            self._log.close()
            raise
        return self

    async def wait_for(self, path: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"the bot exited with {self.proc.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + path, timeout=2)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{path} not 200 after {within}s:\n{self.log()}")
                await asyncio.sleep(0.1)

    async def terminate(self, within: float = 20) -> int:
        if self.proc is None:  # never started
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


class ServiceEnv:
    """A PlatformService for the bot, its Redis user provisioned as the operator does it, and the
    environment its Deployment would carry."""

    def __init__(self, store: RedisStore, admin: aioredis.Redis, mode: str) -> None:
        self.store, self.admin, self.mode = store, admin, mode
        name = f"telegram-bot-{mode}-{secrets.token_hex(3)}"
        spec: dict[str, Any] = {
            "type": "bot",
            "image": "platform/telegram-bot:dev",
            "bot": {"mode": mode, "tokenSecretRef": {"name": "telegram-bot-token"}},
            "env": [{"name": "ORDERS_API_URL", "value": "set by the test"}],
        }
        if mode == "webhook":
            spec["ingress"] = {"host": WEBHOOK_HOST, "path": WEBHOOK_PATH}
        self.svc = PlatformService.from_body({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
        self.plan = cache.plan(self.svc)
        self.prefix = self.plan.prefix
        self.password = secrets.token_hex(16)
        self.redis_url = ""

    async def provision(self) -> None:
        await self.store.ensure_user(self.plan, self.password)
        host, port = platform_env("PLATFORM_REDIS_SERVICE_HOST"), int(platform_env("PLATFORM_REDIS_SERVICE_PORT"))
        self.redis_url = cache.redis_url(self.plan.user, self.password, host, port, 0)

    async def remove(self) -> None:
        await self.store.delete_keys(self.prefix)
        await self.store.delete_user(self.plan.user)

    def env(self, *, telegram: FakeTelegram, orders: FakeOrdersApi, **extra: str) -> dict[str, str]:
        env = builders.secret_settings(self.svc, redis_url=self.redis_url)
        container = builders.build_deployment(self.svc, "test")["spec"]["template"]["spec"]["containers"][0]
        env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
        env.update(
            {
                "BOT_TOKEN": TOKEN,  # from the Secret named by spec.bot.tokenSecretRef
                "ORDERS_API_URL": orders.url,
                "TELEGRAM_API_URL": telegram.url,
                "HTTP_PORT": str(free_port()),
                "ORDERS_API_TIMEOUT_SECONDS": "1",
                "SHUTDOWN_GRACE_SECONDS": "10",
            }
        )
        env.update(extra)
        return env


# --------------------------------------------------------------------------------------------
# a deployed bot


class Deployed:
    """A running bot with its fakes and its Redis user."""

    def __init__(self, bot: BotProcess, telegram: FakeTelegram, orders: FakeOrdersApi, service: ServiceEnv) -> None:
        self.bot, self.telegram, self.orders, self.service = bot, telegram, orders, service
        self._chats = itertools.count(7001)

    def new_chat(self) -> int:
        """A chat (and user) id no other test has used with this bot."""
        return next(self._chats)


async def deploy(
    mode: str,
    redis_admin: tuple[RedisStore, aioredis.Redis],
    serve: Any,
    tmp_path: Path,
    *,
    start: bool = True,
    wait_ready: bool = True,
    **extra: str,
) -> Deployed:
    telegram, orders = FakeTelegram(), FakeOrdersApi()
    telegram.url = await serve(telegram.app())
    orders.url = await serve(orders.app())
    service = ServiceEnv(*redis_admin, mode)
    await service.provision()
    bot = BotProcess(service.env(telegram=telegram, orders=orders, **extra), tmp_path / f"bot-{mode}.log")
    try:
        if start:
            await bot.start(wait_ready=wait_ready)
    except BaseException:
        await service.remove()
        raise
    return Deployed(bot, telegram, orders, service)


async def undeploy(deployed: Deployed) -> None:
    try:
        code = await deployed.bot.terminate()
        assert code == 0, f"the bot exited with {code} on SIGTERM:\n{deployed.bot.log()}"
        assert TOKEN not in deployed.bot.log(), "the bot token leaked into the log"
    finally:
        await deployed.service.remove()


async def webhook_post(
    deployed: Deployed, update: dict[str, Any], *, secret: str | None = None, request_id: str = ""
) -> httpx.Response:
    """Telegram's webhook call: POST to the webhook path with the secret the bot registered."""
    if secret is None:
        secret = deployed.telegram.called("setWebhook")[-1]["secret_token"]
    async with httpx.AsyncClient() as client:
        return await client.post(
            deployed.bot.url + WEBHOOK_PATH,
            content=json.dumps(update),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": secret,
                **({"X-Request-ID": request_id} if request_id else {}),
            },
            timeout=20,
        )
