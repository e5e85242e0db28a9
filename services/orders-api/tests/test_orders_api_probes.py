"""/health, /ready and /metrics as the kubelet and Prometheus see them."""

from __future__ import annotations

import uuid

from orders_testkit import KNOWN_USER_ID, with_port


async def test_health_answers_while_the_process_is_up(api):
    resp = await api.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_ready_follows_redis_going_away_and_coming_back(start_app, platform, redis_proxy):
    api = await start_app(REDIS_URL=with_port(platform.env["REDIS_URL"], redis_proxy.port))

    up = await api.get("/ready")
    assert up.status_code == 200, up.text
    assert up.json() == {"status": "ready", "checks": {"rabbitmq": "ok", "redis": "ok"}}

    await redis_proxy.stop()
    down = await api.get("/ready")
    assert down.status_code == 503
    checks = down.json()["checks"]
    assert checks["rabbitmq"] == "ok"
    assert checks["redis"].startswith("Redis unreachable")
    order = await api.post(
        "/orders", json={"user_id": KNOWN_USER_ID, "item": "tea", "quantity": 1}, headers={"Idempotency-Key": "k"}
    )
    assert order.status_code == 503

    await redis_proxy.start()  # same port
    again = await api.get("/ready")
    assert again.status_code == 200, again.text


async def test_ready_says_when_rabbitmq_is_unreachable(start_app):
    api = await start_app(RABBITMQ_URL="amqp://nobody:nothing@127.0.0.1:9/")
    resp = await api.get("/ready")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["rabbitmq"] != "ok"


async def test_metrics_count_requests_by_route_and_orders_placed(api):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"user_id": KNOWN_USER_ID, "item": "tea", "quantity": 1}
    await api.post("/orders", json=body, headers=key)
    await api.post("/orders", json=body, headers=key)

    resp = await api.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'http_requests_total{method="POST",route="/orders",status="201"} 2.0' in text
    assert "orders_created_total 1.0" in text
    assert "orders_idempotent_replays_total 1.0" in text


async def test_a_request_id_is_made_up_when_the_caller_sends_none(api):
    resp = await api.get("/health")
    assert len(resp.headers["X-Request-ID"]) == 32
