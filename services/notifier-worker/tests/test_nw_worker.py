"""The worker in-process against real RabbitMQ and Redis, provisioned as the operator does."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
from notifier_worker_doubles import FlakyNotifier, SlowNotifier, eventually
from notifier_worker_env import Admin, Deployed, Workers
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from notifier_worker.adapters.broker import ConsumeRefused
from notifier_worker.bootstrap import Worker


def order(order_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id or f"o-{uuid.uuid4().hex[:8]}",
        "user_id": "u-42",
        "item": "coffee beans",
        "quantity": 2,
        "created_at": "2025-01-02T03:04:05Z",
        "schema_version": 1,
        **extra,
    }


def sample(worker: Worker, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


async def sent_count(admin: Admin, d: Deployed) -> int:
    return int(await admin.redis.get(d.settings.key("stats", "notifications_sent")) or 0)


def spans_of(tracing: tuple[TracerProvider, InMemorySpanExporter], queue: str) -> list[Any]:
    return [s for s in tracing[1].get_finished_spans() if s.attributes.get("messaging.destination.name") == queue]


async def test_a_message_is_notified_once_and_acknowledged(
    provision, admin: Admin, workers: Workers, tracing, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="notifier_worker")
    d = await provision()
    worker = await workers.start(d)
    trace_id, parent_span = uuid.uuid4().int >> 64 << 64 | 1, 0x1234ABCD
    headers = {"traceparent": f"00-{trace_id:032x}-{parent_span:016x}-01", "x-request-id": "req-order-1"}
    event = order("o-1", coupon="NEW10")  # a field this worker does not know: tolerated
    await admin.publish(d, event, message_id="msg-1", headers=headers)

    s = d.settings
    await eventually(lambda: admin.redis.exists(s.key("notifications", "o-1")), what="notification written")
    sent = json.loads(await admin.redis.get(s.key("notifications", "o-1")))
    assert sent == {"order_id": "o-1", "user_id": "u-42", "text": "Your order o-1 is confirmed: 2 x coffee beans."}
    assert await sent_count(admin, d) == 1
    assert await admin.redis.get(s.key("processed", "msg-1")) == "done"
    ttl = await admin.redis.ttl(s.key("processed", "msg-1"))
    assert 0 < ttl <= s.idempotency_ttl_seconds == 86400

    await eventually(lambda: _async(sample(worker, "notifier_messages_processed_total", queue=d.queue) == 1))
    # The consumer span continues the publisher's trace, and the log line carries its request id.
    (span,) = spans_of(tracing, d.queue)
    assert span.kind is SpanKind.CONSUMER
    assert span.context.trace_id == trace_id and span.parent.span_id == parent_span
    assert span.attributes["messaging.message.id"] == "msg-1" and span.attributes["request_id"] == "req-order-1"
    (line,) = [r for r in caplog.records if r.getMessage() == "notification sent for order o-1"]
    assert line.request_id == "req-order-1" and line.message_id == "msg-1" and line.retry_count == 0

    await worker.stop()
    # Had it not been acknowledged, closing the channel would have put it back in the queue.
    assert await admin.ready_count(d.queue) == 0
    assert await admin.ready_count(d.dlq) == 0


async def _async(value: bool) -> bool:
    return value


async def test_the_same_message_delivered_twice_gives_one_notification(provision, admin: Admin, workers: Workers):
    d = await provision()
    worker = await workers.start(d)
    body = order("o-dup")
    # Back to back (likely handled concurrently, prefetch 10), then once more after it was handled.
    await admin.publish(d, body, message_id="msg-dup")
    await admin.publish(d, body, message_id="msg-dup")

    def settled() -> float:
        return sample(worker, "notifier_messages_processed_total", queue=d.queue) + sample(
            worker, "notifier_messages_duplicates_total", queue=d.queue
        )

    await eventually(lambda: _async(settled() == 2), what="both deliveries settled")
    await admin.publish(d, body, message_id="msg-dup")
    await eventually(lambda: _async(settled() == 3), what="the third delivery settled")

    assert await sent_count(admin, d) == 1
    assert sample(worker, "notifier_messages_processed_total", queue=d.queue) == 1
    assert sample(worker, "notifier_messages_duplicates_total", queue=d.queue) == 2
    await worker.stop()
    assert await admin.ready_count(d.queue) == 0


async def test_two_copies_handled_at_the_same_time_give_one_notification(provision, admin: Admin, workers: Workers):
    d = await provision()
    slow = SlowNotifier(workers.real_notifier(d), seconds=0.5)  # the first copy is still sending...
    worker = await workers.start(d, notifier=slow)
    body = order("o-twin")
    await admin.publish(d, body, message_id="msg-twin")
    await asyncio.wait_for(slow.started.wait(), 5)
    await admin.publish(d, body, message_id="msg-twin")  # ...when the second is delivered

    await eventually(
        lambda: _async(sample(worker, "notifier_messages_duplicates_total", queue=d.queue) == 1),
        what="the second copy acknowledged as a duplicate",
    )
    assert await sent_count(admin, d) == 1
    # It found the first one's claim, waited one retry delay, and found it done; no retry was spent.
    assert sample(worker, "notifier_messages_deferred_total", queue=d.queue) == 1
    assert sample(worker, "notifier_messages_retried_total", queue=d.queue) == 0
    await worker.stop()
    assert await admin.ready_count(d.queue) == 0 and await admin.ready_count(d.dlq) == 0


async def test_a_handler_failing_once_is_retried_after_the_delay_then_succeeds(
    provision, admin: Admin, workers: Workers, tracing, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="notifier_worker")
    d = await provision(max_retries=2)
    flaky = FlakyNotifier(workers.real_notifier(d), failures=1)
    worker = await workers.start(d, notifier=flaky)
    await admin.publish(d, order("o-retry"), message_id="msg-retry", headers={"x-request-id": "req-retry"})

    await eventually(lambda: _count_is(admin, d, 1), what="notification sent after the retry")
    assert len(flaky.calls) == 2
    assert flaky.calls[1] - flaky.calls[0] >= 0.9  # retryDelaySeconds: 1
    assert sample(worker, "notifier_messages_retried_total", queue=d.queue) == 1
    assert sample(worker, "notifier_messages_processed_total", queue=d.queue) == 1

    (sent,) = [r for r in caplog.records if r.getMessage() == "notification sent for order o-retry"]
    assert sent.retry_count == 1 and sent.request_id == "req-retry"
    failed, succeeded = sorted(spans_of(tracing, d.queue), key=lambda s: s.start_time)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["messaging.rabbitmq.retry_count"] == 0
    assert succeeded.attributes["messaging.rabbitmq.retry_count"] == 1
    assert succeeded.status.status_code is not StatusCode.ERROR
    await worker.stop()
    assert await admin.ready_count(d.queue) == 0 and await admin.ready_count(d.dlq) == 0


async def _count_is(admin: Admin, d: Deployed, n: int) -> bool:
    return await sent_count(admin, d) == n


async def test_a_handler_failing_past_max_retries_ends_in_the_dlq_with_its_body(
    provision, admin: Admin, workers: Workers
):
    d = await provision(max_retries=2)
    failing = FlakyNotifier(workers.real_notifier(d), failures=1000)
    worker = await workers.start(d, notifier=failing)
    body = json.dumps(order("o-dead")).encode()
    await admin.publish(d, body, message_id="msg-dead")

    await eventually(lambda: admin.ready_count(d.dlq), within=15, what="a message in the DLQ")
    dead = await admin.get(d.dlq)
    assert dead is not None
    assert dead.body == body and dead.message_id == "msg-dead"
    assert dead.headers["x-retry-count"] == 2
    assert len(failing.calls) == 3  # the first attempt and maxRetries retries
    assert await sent_count(admin, d) == 0
    # The claim was given up at each failure, so nothing marks it processed.
    assert await admin.redis.exists(d.settings.key("processed", "msg-dead")) == 0
    assert sample(worker, "notifier_messages_retried_total", queue=d.queue) == 2
    assert sample(worker, "notifier_messages_dead_lettered_total", queue=d.queue, reason="retries_exhausted") == 1
    assert await admin.ready_count(d.queue) == 0


async def test_a_poison_message_goes_straight_to_the_dlq(provision, admin: Admin, workers: Workers):
    d = await provision(max_retries=3)
    notifier = FlakyNotifier(workers.real_notifier(d), failures=0)
    worker = await workers.start(d, notifier=notifier)
    not_json = b"{this is not json"
    wrong_schema = json.dumps({"order_id": "o-bad", "user_id": "u-1", "item": "tea", "quantity": 0}).encode()
    started = time.monotonic()
    await admin.publish(d, not_json, message_id="poison-1")
    await admin.publish(d, wrong_schema, message_id="poison-2")

    async def both_dead() -> bool:
        return await admin.ready_count(d.dlq) == 2

    await eventually(both_dead, what="two messages in the DLQ")
    assert time.monotonic() - started < 1  # no retry delay was waited
    bodies = {(await admin.get(d.dlq)).body, (await admin.get(d.dlq)).body}
    assert bodies == {not_json, wrong_schema}
    assert notifier.calls == []
    assert sample(worker, "notifier_messages_dead_lettered_total", queue=d.queue, reason="poison") == 2
    assert sample(worker, "notifier_messages_retried_total", queue=d.queue) == 0


async def test_sigterm_finishes_the_message_in_flight_before_closing(provision, admin: Admin, workers: Workers):
    d = await provision()
    slow = SlowNotifier(workers.real_notifier(d), seconds=1.5)
    worker = workers.build(d, notifier=slow)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.request_stop)  # what __main__ installs
    try:
        running = asyncio.create_task(worker.run())
        await eventually(lambda: _async(worker.broker.connected), what="consuming")
        await admin.publish(d, order("o-slow"), message_id="msg-slow")
        await asyncio.wait_for(slow.started.wait(), 5)

        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert (await worker.readiness())[0] is False
        # Consuming stopped at once: a message published now waits for the next worker.
        await admin.publish(d, order("o-later"), message_id="msg-later")
        await asyncio.wait_for(running, 10)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)

    stopped_at = time.monotonic()
    assert slow.finished_at is not None and slow.finished_at <= stopped_at and not slow.cancelled
    assert await sent_count(admin, d) == 1
    assert await admin.redis.get(d.settings.key("processed", "msg-slow")) == "done"
    assert not worker.broker.connected
    assert await admin.ready_count(d.queue) == 1  # o-later only: o-slow was acknowledged
    later = await admin.get(d.queue)
    assert later is not None and later.message_id == "msg-later"


async def test_stop_waits_only_for_the_grace_period_and_the_message_is_redelivered(
    provision, admin: Admin, workers: Workers
):
    d = await provision(SHUTDOWN_GRACE_SECONDS="0.5")
    stuck = SlowNotifier(workers.real_notifier(d), seconds=None)
    worker = await workers.start(d, notifier=stuck)
    await admin.publish(d, order("o-stuck"), message_id="msg-stuck")
    await asyncio.wait_for(stuck.started.wait(), 5)

    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 3
    assert stuck.cancelled
    # Not acknowledged, so back in the queue; and its claim was released, so the next worker
    # sends it at once instead of waiting out the lease.
    assert await admin.ready_count(d.queue) == 1
    assert await admin.redis.exists(d.settings.key("processed", "msg-stuck")) == 0

    await workers.start(d)
    await eventually(lambda: _count_is(admin, d, 1), what="redelivered message sent")


async def test_the_workers_user_cannot_consume_a_queue_it_does_not_own(provision, admin: Admin, workers: Workers):
    mine, theirs = await provision(), await provision()
    # A worker given another service's queue (a hand-edited Secret, say) with its own credentials.
    consumes = json.loads(mine.env["RABBITMQ_CONSUMES"])
    consumes[0]["queue"] = theirs.queue
    misconfigured = Deployed(
        svc=mine.svc,
        env=mine.env | {"RABBITMQ_CONSUMES": json.dumps(consumes)},
        queue=theirs.queue,
        exchange=theirs.exchange,
        dlq=theirs.dlq,
    )
    worker = workers.build(misconfigured)
    with pytest.raises(ConsumeRefused) as refused:
        await worker.start()
    assert "ACCESS_REFUSED" in str(refused.value) and theirs.queue in str(refused.value)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.http.port}") as http:
        assert (await http.get("/health")).status_code == 200
        ready = await http.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
    # Their message is still theirs.
    await admin.publish(theirs, order("o-theirs"), message_id="msg-theirs")
    await asyncio.sleep(0.3)
    assert await admin.ready_count(theirs.queue) == 1


async def test_probes_and_metrics(provision, admin: Admin, workers: Workers):
    d = await provision()
    worker = await workers.start(d)
    await admin.publish(d, order("o-m"), message_id="msg-m")
    await eventually(lambda: _count_is(admin, d, 1), what="notification sent")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.http.port}") as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "detail": f"consuming {d.queue}"}
        metrics = (await http.get("/metrics")).text
        assert f'notifier_messages_processed_total{{queue="{d.queue}"}} 1.0' in metrics
        assert "notifier_message_handling_seconds_bucket" in metrics
        assert (await http.get("/nope")).status_code == 404


async def test_not_ready_while_redis_is_unreachable(provision, workers: Workers):
    d = await provision()
    d.env["REDIS_URL"] = "redis://nobody:nothing@127.0.0.1:1/0"
    worker = await workers.start(d)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.http.port}") as http:
        ready = await http.get("/ready")
    assert ready.status_code == 503 and ready.json()["detail"].startswith("Redis unreachable")


async def test_run_keeps_trying_until_it_may_consume(provision, workers: Workers, caplog: pytest.LogCaptureFixture):
    d = await provision(CONNECT_BACKOFF_SECONDS="0.1")
    d.env["RABBITMQ_URL"] = d.env["RABBITMQ_URL"].rsplit(":", 1)[0] + ":1/%2F"  # nothing listens there
    worker = workers.build(d)
    running = asyncio.create_task(worker.run())
    await eventually(lambda: _async(any("cannot consume yet" in r.getMessage() for r in caplog.records)))
    assert (await worker.readiness()) == (False, "not consuming from RabbitMQ")
    worker.request_stop()
    await asyncio.wait_for(running, 5)
