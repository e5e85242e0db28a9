"""The pure part of idempotency: fingerprints, stored records, and what a repeated key means."""

from __future__ import annotations

import pytest

from orders_api.domain.model import CreateOrder
from orders_api.service_layer import idempotency
from orders_api.service_layer.idempotency import (
    Completed,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    Pending,
)


def _fp(**body):
    return idempotency.fingerprint(CreateOrder.model_validate(body))


def test_the_same_request_gives_the_same_fingerprint_whatever_its_spelling():
    assert _fp(user_id="42", item="tea", quantity=2) == _fp(quantity=2, item=" tea ", user_id=42)


@pytest.mark.parametrize("change", [{"user_id": "43"}, {"item": "coffee"}, {"quantity": 3}])
def test_any_different_field_gives_another_fingerprint(change):
    base = {"user_id": "42", "item": "tea", "quantity": 2}
    assert _fp(**base) != _fp(**{**base, **change})


def test_a_completed_record_with_the_same_fingerprint_is_replayed():
    done = Completed("fp", 201, {"id": "o1"})
    assert idempotency.replay(done, "fp") == done


def test_a_key_still_being_processed_is_in_use():
    with pytest.raises(IdempotencyKeyInUse, match="still being processed"):
        idempotency.replay(Pending("fp"), "fp")


@pytest.mark.parametrize("record", [Pending("fp"), Completed("fp", 201, {"id": "o1"})])
def test_a_key_reused_with_another_body_is_refused(record):
    with pytest.raises(IdempotencyKeyReused, match="different request body"):
        idempotency.replay(record, "other")


@pytest.mark.parametrize("record", [Pending("fp"), Completed("fp", 201, {"id": "o1", "quantity": 2})])
def test_records_survive_their_json_form(record):
    assert idempotency.decode(idempotency.encode(record)) == record


def test_two_pending_claims_of_one_request_are_told_apart():
    # The claim is released or completed only by the request that made it.
    a, b = Pending("fp"), Pending("fp")
    assert idempotency.encode(a) != idempotency.encode(b)


def test_an_unknown_record_state_is_an_error():
    with pytest.raises(ValueError, match="unknown idempotency record state"):
        idempotency.decode('{"state": "weird", "fingerprint": "fp"}')


@pytest.mark.parametrize("key", ["3f1c0a9e-4b8e-4a57-9a55-0c7f3a4d9b21", "order:2024-05-01#1", "k"])
def test_usual_keys_are_accepted(key):
    assert idempotency.validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "header is required"),
        ("", "printable ASCII"),
        ("has space", "printable ASCII"),
        ("é", "printable ASCII"),
        ("k" * 256, "1 to 255"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(key, message):
    with pytest.raises(InvalidIdempotencyKey, match=message):
        idempotency.validate_key(key)
