"""/health, /ready and /metrics for the kubelet and Prometheus.

A worker has no web framework, and this needs none: three GET routes over asyncio streams, one
request per connection (what probes and scrapers do), on the same event loop as the consumer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, exposition

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 503: "Service Unavailable"}
_MAX_HEADER_BYTES = 16 * 1024


class ProbeServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, ready: ReadinessCheck) -> None:
        self._host, self._port = host, port
        self._registry = registry
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("probes and metrics on http://%s:%d (/health, /ready, /metrics)", self._host, self.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/health":
            return 200, "application/json", b'{"status":"ok"}\n'
        if path == "/ready":
            ok, detail = await self._ready()
            body = json.dumps({"status": "ready" if ok else "not ready", "detail": detail}).encode() + b"\n"
            return (200 if ok else 503), "application/json", body
        if path == "/metrics":
            return 200, exposition.CONTENT_TYPE_LATEST, exposition.generate_latest(self._registry)
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            if len(head) > _MAX_HEADER_BYTES:
                raise ValueError("headers too large")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, content_type, body = await self._route(method, target)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, content_type, body, method = 400, "text/plain", b"bad request\n", "GET"
        except Exception:
            log.exception("probe request failed")
            status, content_type, body, method = 503, "text/plain", b"error\n", "GET"
        head_out = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(head_out + (b"" if method == "HEAD" else body))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
