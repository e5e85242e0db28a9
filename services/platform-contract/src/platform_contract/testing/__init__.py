"""What the services' test suites do the same way (extra `testing`): the servers' variables, free
ports, an app run in-process with its lifespan, a service run as its container runs it, its JSON
log lines and its metrics.

Imported by the suites' conftest and tests only, never by a service.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from platform_contract.telemetry.logs import JsonFormatter

# The shared tests' asserts explain their failures as a test module's do (before anything imports them).
pytest.register_assert_rewrite("platform_contract.testing.data_service")

# What `eval "$(hack/backends.sh env)"` sets: the local Redis and RabbitMQ, as their admin.
BACKEND_VARIABLES = (
    "PLATFORM_REDIS_URL",
    "PLATFORM_REDIS_SERVICE_HOST",
    "PLATFORM_REDIS_SERVICE_PORT",
    "PLATFORM_RABBITMQ_MANAGEMENT_URL",
    "PLATFORM_RABBITMQ_ADMIN_USER",
    "PLATFORM_RABBITMQ_ADMIN_PASSWORD",
    "PLATFORM_RABBITMQ_SERVICE_HOST",
    "PLATFORM_RABBITMQ_SERVICE_PORT",
)
START_BACKENDS = (
    "start Redis and RabbitMQ with `hack/backends.sh up` and "
    '`eval "$(hack/backends.sh env)"` before running these tests'
)

# PUT /users/by-telegram/{telegram_id} with {"name": ...}: users-data's, which orders-api passes on
# after checking it the same way. Each of these is refused with 422 (and orders-api asks nobody).
BAD_TELEGRAM_ACCOUNT_REQUESTS = [
    ("0", {"name": "Ann"}),  # ids start at 1
    ("-1", {"name": "Ann"}),
    (str(2**63), {"name": "Ann"}),  # past a bigint
    ("ann", {"name": "Ann"}),
    ("42", {"name": "   "}),  # a name is not empty
    ("42", {"name": "x" * 201}),  # nor longer than 200
    ("42", {}),
    ("42", {"name": "Ann", "email": "ann@example.org"}),  # a Telegram account tells no email
]

RunningApp = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
JsonLogs = Callable[[], list[dict[str, Any]]]


def required_env(names: tuple[str, ...], *, hint: str) -> dict[str, str]:
    """The variables `names` from the environment; the test fails, saying `hint`, if any is unset."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: {hint}", pytrace=False)
    return {n: os.environ[n] for n in names}


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_name(request: pytest.FixtureRequest) -> str:
    """A database name of the requesting test module's own, made unique per run."""
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return f"{module}_{uuid.uuid4().hex[:8]}"


def app_runner(build_app: Callable[[Any], Any], base_url: str) -> RunningApp:
    """running_app(settings, wait_ready=True): the app with its startup and shutdown run (as uvicorn
    would), and an httpx client calling it in-process."""

    @asynccontextmanager
    async def run(settings: Any, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
        app = build_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
        ):
            if wait_ready:
                await until_ready(client)
            yield client

    return run


async def until_ready(client: httpx.AsyncClient, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while (response := await client.get("/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, f"not ready after {seconds}s: {response.text}"
        await asyncio.sleep(0.1)


@contextmanager
def capture_json_logs(logger: str, service: str) -> Iterator[JsonLogs]:
    """The log lines of `logger` (and below) while inside, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service))
    log = logging.getLogger(logger)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def counter(metrics_text: str, name: str, **labels: str) -> float:
    """The value of the first sample `name` with these labels in a /metrics answer (0 if none)."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def service_env(settings_class: Any, **overrides: str) -> dict[str, str]:
    """The environment the operator would give the container: its own settings only."""
    fields = settings_class.model_fields
    env = {k: v for k, v in os.environ.items() if k not in fields and not k.startswith("DATABASE_")}
    return {**env, **overrides}


async def run_module(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m module args` to its end (a minute at most), with its output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


@dataclass
class Served:
    """What a service run as its container runs it answered, and the JSON lines it logged."""

    ready: httpx.Response
    response: httpx.Response
    logs: list[dict[str, Any]]


@asynccontextmanager
async def python_module(module: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m module` running, its output piped; killed on the way out if it is still running
    (a test that failed before stopping it leaves no process behind)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def sigterm(proc: asyncio.subprocess.Process, seconds: float) -> tuple[bytes, bytes]:
    """Sends SIGTERM (as the kubelet does) and waits, `seconds` at most, for the process to end:
    its stdout and stderr."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.communicate(), seconds)


async def serve_until_sigterm(
    module: str, env: dict[str, str], port: int, call: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> Served:
    """`python -m module` serving on `port`: waits for /health, then /ready (asked with the request
    id `probe-1`), makes `call`, then sends SIGTERM and waits (30 s at most) for it to end."""
    async with python_module(module, env) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(150):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            # /health answers at once; /ready once the startup step is done
            for _ in range(300):
                ready = await client.get("/ready", headers={"X-Request-ID": "probe-1"})
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            response = await call(client)
        _, err = await sigterm(proc, 30)
    return Served(ready, response, [json.loads(line) for line in err.decode().splitlines()])
