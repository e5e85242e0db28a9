"""`python -m orders_api` as the container runs it: it serves on LISTEN_PORT, logs JSON lines
carrying the request id, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import httpx
from orders_testkit import KNOWN_USER_ID, unused_port

from platform_contract import data_url_variable
from platform_contract.testing import python_module, sigterm


async def _wait_ready(client: httpx.AsyncClient, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.returncode is None, "orders-api exited during start-up"
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("orders-api did not become ready in 20s")


async def test_the_process_serves_logs_json_and_stops_on_sigterm(platform, users_data):
    port = unused_port()
    env = {
        **os.environ,
        **platform.env,
        data_url_variable("users-data"): users_data.url,
        "LISTEN_HOST": "127.0.0.1",
        "LISTEN_PORT": str(port),
    }
    async with python_module("orders_api", env) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await _wait_ready(client, proc)
            resp = await client.post(
                "/orders",
                json={"user_id": KNOWN_USER_ID, "item": "tea", "quantity": 1},
                headers={"Idempotency-Key": str(uuid.uuid4()), "X-Request-ID": "req-process-1"},
            )
            assert resp.status_code == 201, resp.text
        stdout, stderr = await sigterm(proc, 25)

    # uvicorn re-raises SIGTERM once it has shut down gracefully, so the exit status is the signal's.
    assert proc.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    messages = [entry["message"] for entry in lines]
    assert "stopped: RabbitMQ, Redis and users-data connections closed" in messages, messages[-5:]
    assert messages.index("Shutting down") < messages.index("Application shutdown complete.")
    placed = [entry for entry in lines if entry["message"] == "order placed"]
    assert placed, lines
    assert placed[0]["request_id"] == "req-process-1"
    assert placed[0]["order_id"] == resp.json()["id"]
    assert len(placed[0]["trace_id"]) == 32
    assert any(entry["message"] == "POST /orders 201" and entry["status"] == 201 for entry in lines)
