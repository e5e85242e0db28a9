"""Helpers of the orders-api tests (a module name of its own: every service has a conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

# users-data numbers its users with UUIDs.
KNOWN_USER_ID = "7c0e6d0a-3b7e-4a52-9f0e-5c1d1b2a9e11"


class UsersDataStandIn:
    """A test double of users-data, another service of this project (written separately): the two
    calls orders-api makes, answering as users-data does, and echoing the request id.

    GET /users/{id}: 200 for KNOWN_USER_ID and the users made by PUT, 404 for any other UUID, 422
    for an id that is no UUID (FastAPI's path validation).
    PUT /users/by-telegram/{telegram_id} {"name"}: 201 and a new user the first time for an id,
    200 and the same user after; 422 for an id out of 1..2**63-1 or a blank name.

    It records what it received, to check the request id and trace context that orders-api sends
    along. `answer` forces the status (and detail) of the next PUTs. It can stop and start again on
    the same port, to play users-data being down."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds before answering, to hold a request in flight
        self.answer: tuple[int, Any] | None = None
        self.by_telegram: dict[int, dict[str, Any]] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _user_for_telegram(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append({"method": "PUT", "path": request.path, "headers": dict(request.headers), "body": body})
        echo = {"X-Request-ID": request.headers.get("X-Request-ID", "")}
        if self.answer is not None:
            status, detail = self.answer
            return web.json_response({"detail": detail}, status=status, headers=echo)
        try:
            telegram_id = int(request.match_info["telegram_id"])
        except ValueError:
            telegram_id = 0
        name = " ".join(str(body.get("name", "")).split())
        if not 0 < telegram_id < 2**63 or not name or set(body) != {"name"}:
            return web.json_response({"detail": [{"msg": "invalid"}]}, status=422, headers=echo)
        if telegram_id in self.by_telegram:
            return web.json_response(self.by_telegram[telegram_id], headers=echo)
        user = {
            "id": str(uuid.uuid4()),
            "email": None,
            "name": name,
            "created_at": "2024-01-01T00:00:00Z",
            "telegram_id": telegram_id,
        }
        self.by_telegram[telegram_id] = user
        return web.json_response(user, status=201, headers=echo)

    async def _get_user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        self.received.append({"method": "GET", "path": request.path, "headers": dict(request.headers)})
        await asyncio.sleep(self.delay)
        echo = {"X-Request-ID": request.headers.get("X-Request-ID", "")}
        try:
            uuid.UUID(user_id)
        except ValueError:
            problem = [{"type": "uuid_parsing", "loc": ["path", "user_id"], "msg": "Input should be a valid UUID"}]
            return web.json_response({"detail": problem}, status=422, headers=echo)
        if user_id != KNOWN_USER_ID and all(u["id"] != user_id for u in self.by_telegram.values()):
            return web.json_response({"detail": f"user {user_id} not found"}, status=404, headers=echo)
        return web.json_response(
            {"id": KNOWN_USER_ID, "email": "ada@example.com", "name": "Ada", "created_at": "2024-01-01T00:00:00Z"},
            headers=echo,
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/users/{user_id}", self._get_user)
        app.router.add_put("/users/by-telegram/{telegram_id}", self._user_for_telegram)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class TcpProxy:
    """Forwards a local port to a real server; stopping it makes that server unreachable for
    whoever connects through it, without touching the server the other tests use."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        self._writers |= {client_w, server_w}
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None


def with_port(url: str, port: int) -> str:
    """The same URL (credentials and all) on 127.0.0.1:port."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}"))


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
