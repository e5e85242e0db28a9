"""`python -m notifier_worker` as Kubernetes runs it: env in, probes on HTTP, JSON logs, SIGTERM out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import httpx
from notifier_worker_doubles import eventually
from notifier_worker_env import Admin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_python_m_notifier_worker_consumes_and_stops_on_sigterm(provision, admin: Admin):
    port = free_port()
    d = await provision(HTTP_PORT=str(port))
    env = {"PATH": os.environ.get("PATH", ""), **d.env}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier_worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=20, what="/ready 200")
            await admin.publish(
                d,
                {"order_id": "o-p", "user_id": "u", "item": "tea", "quantity": 1, "created_at": "2025-01-01T00:00:00Z"},
                message_id="msg-p",
                headers={"x-request-id": "req-process"},
            )
            await eventually(lambda: admin.redis.exists(d.settings.key("notifications", "o-p")), what="notification")
            # counted once the message is acknowledged, just after the notification is stored
            processed = f'notifier_messages_processed_total{{queue="{d.queue}"}} 1.0'

            async def counted() -> bool:
                return processed in (await http.get("/metrics")).text

            await eventually(counted, what=processed)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    lines = [json.loads(line) for line in (await proc.stderr.read()).decode().splitlines() if line.startswith("{")]
    sent = [x for x in lines if x["message"] == "notification sent for order o-p"]
    assert len(sent) == 1 and sent[0]["request_id"] == "req-process" and sent[0]["service"] == "notifier-worker"
    assert len(sent[0]["trace_id"]) == 32
    assert lines[-1]["message"] == "stopped"
    assert await admin.ready_count(d.queue) == 0
