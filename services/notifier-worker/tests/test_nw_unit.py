"""Pure code: the event's schema, the retry decision, the log format, the settings' checks."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from notifier_worker.config import Settings
from notifier_worker.domain.model import PoisonMessage, notification_for, parse_order_created
from notifier_worker.entrypoints.consumer import AfterFailure, after_failure, retry_count, text_headers
from platform_contract import Consume
from platform_contract.telemetry import request_id
from platform_contract.telemetry.logs import JsonFormatter

ORDER = {
    "order_id": "o-1",
    "user_id": "u-1",
    "item": "tea",
    "quantity": 3,
    "created_at": "2025-01-02T03:04:05Z",
    "schema_version": 1,
}


def test_an_order_created_event_with_unknown_fields_is_accepted():
    event = parse_order_created(json.dumps(ORDER | {"coupon": "X", "schema_version": 2}).encode())
    assert (event.order_id, event.quantity, event.schema_version) == ("o-1", 3, 2)
    assert notification_for(event).text == "Your order o-1 is confirmed: 3 x tea."


def test_numeric_ids_are_read_as_ids():
    event = parse_order_created(json.dumps(ORDER | {"order_id": 17, "user_id": 4}).encode())
    assert (event.order_id, event.user_id) == ("17", "4")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (json.dumps({k: v for k, v in ORDER.items() if k != "item"}).encode(), "invalid: item"),
        (json.dumps(ORDER | {"quantity": 0}).encode(), "invalid: quantity"),
        (json.dumps(ORDER | {"created_at": "yesterday"}).encode(), "invalid: created_at"),
    ],
)
def test_a_poison_message_says_what_is_wrong(body: bytes, says: str):
    with pytest.raises(PoisonMessage, match=says):
        parse_order_created(body)


def consume(**kw: object) -> Consume:
    return Consume.model_validate(
        {"queue": "q", "maxRetries": 2, "retryExchange": "q.retry", "deadLetterQueue": "q.dlq", **kw}
    )


@pytest.mark.parametrize(
    ("count", "entry", "step"),
    [
        (0, consume(), AfterFailure.RETRY),
        (1, consume(), AfterFailure.RETRY),
        (2, consume(), AfterFailure.DEAD_LETTER),
        (7, consume(), AfterFailure.DEAD_LETTER),
        (0, consume(maxRetries=0, retryExchange=""), AfterFailure.DEAD_LETTER),
    ],
)
def test_after_a_failure_retry_until_max_retries_then_dead_letter(count: int, entry: Consume, step: AfterFailure):
    assert after_failure(count, entry) is step


@pytest.mark.parametrize(
    ("headers", "count"),
    [({}, 0), ({"x-retry-count": 2}, 2), ({"x-retry-count": "3"}, 3), ({"x-retry-count": "junk"}, 0)],
)
def test_retry_count_header(headers: dict[str, object], count: int):
    assert retry_count(text_headers(headers), "x-retry-count") == count


def test_text_headers_decode_bytes():
    assert text_headers({"traceparent": b"00-abc", "n": 1}) == {"traceparent": "00-abc", "n": 1}


def test_log_lines_are_json_with_the_request_id_in_hand():
    record = logging.LogRecord("notifier_worker.x", logging.INFO, __file__, 1, "sent %s", ("o-1",), None)
    record.order_id = "o-1"
    token = request_id.set("req-7")
    try:
        line = json.loads(JsonFormatter("notifier-worker").format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "sent o-1" and line["level"] == "INFO"
    assert line["request_id"] == "req-7" and line["order_id"] == "o-1" and line["service"] == "notifier-worker"


def test_settings_come_from_the_platform_variables_and_have_defaults():
    s = Settings.from_mapping({"REDIS_KEY_PREFIX": "demo:notifier-worker", "IDEMPOTENCY_TTL_SECONDS": "600"})
    assert s.key("processed", "m-1") == "demo:notifier-worker:processed:m-1"
    assert (s.idempotency_ttl_seconds, s.http_port, s.shutdown_grace_seconds) == (600, 8000, 20.0)


def test_the_claim_must_outlast_the_handler_timeout():
    with pytest.raises(ValidationError, match="CLAIM_LEASE_SECONDS"):
        Settings.from_mapping({"CLAIM_LEASE_SECONDS": "10", "HANDLER_TIMEOUT_SECONDS": "15"})
