"""Passwords of a service's broker and Redis users: read back from the live Secret, rotated on request,
and checked against RabbitMQ's stored hash."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest

from platform_operator import builders, cache, credentials, messaging, rabbitmq
from platform_operator.credentials import ROTATE_ANNOTATION, ROTATED_FOR_ANNOTATION, Credentials

RABBIT_PW = "rabbit-P@ss/w:rd%"  # special characters survive the URL round trip
REDIS_PW = "redis pass#word?"
RABBIT_URL = messaging.amqp_url("shop.orders", RABBIT_PW, "rabbitmq", 5672, "/")
REDIS_URL = cache.redis_url("shop.orders", REDIS_PW, "redis", 6379, 0)


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v, validate=True).decode() for k, v in secret["data"].items()}


def live_secret(svc: Any, *, rotation: str = "", rabbitmq_url: str = RABBIT_URL, redis_url: str = REDIS_URL):
    settings = builders.secret_settings(svc, rabbitmq_url=rabbitmq_url, redis_url=redis_url)
    return builders.build_secret(svc, settings, rotation)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def svc(make_kind):
    return make_kind("worker", messaging={"consumes": [{"queue": "q", "exchange": "orders"}]})


# --- the Secret the credentials live in --------------------------------------------------------------------


def test_secret_settings_carry_both_urls_and_the_consumer_settings(svc):
    settings = builders.secret_settings(svc, rabbitmq_url=RABBIT_URL, redis_url=REDIS_URL)
    assert settings["RABBITMQ_URL"] == RABBIT_URL
    assert settings["REDIS_URL"] == REDIS_URL
    assert settings["RABBITMQ_CONSUMES"] == messaging.consumer_settings(svc)
    assert json.loads(settings["RABBITMQ_CONSUMES"])[0]["queue"] == "shop.q"  # the broker's name
    assert settings["RABBITMQ_PUBLISHES"] == ""


def test_secret_settings_list_published_exchanges(make_kind):
    svc = make_kind("api", messaging={"publishes": [{"name": "orders"}, {"name": "audit", "type": "fanout"}]})
    settings = builders.secret_settings(svc, rabbitmq_url=RABBIT_URL)
    assert settings["RABBITMQ_PUBLISHES"] == "shop.orders,shop.audit"
    assert settings["RABBITMQ_PUBLISHES"] == messaging.publishes_setting(svc)
    assert "REDIS_URL" not in settings


def test_secret_settings_without_backends_have_no_broker_or_redis_keys(svc):
    settings = builders.secret_settings(svc)
    for key in ("RABBITMQ_URL", "RABBITMQ_CONSUMES", "RABBITMQ_PUBLISHES", "REDIS_URL"):
        assert key not in settings


def test_build_secret_encodes_the_urls(svc):
    secret = live_secret(svc)
    assert secret["metadata"]["name"] == "orders-platform"
    assert decoded(secret)["RABBITMQ_URL"] == RABBIT_URL
    assert decoded(secret)["REDIS_URL"] == REDIS_URL


def test_build_secret_records_the_rotation_only_when_there_is_one(svc):
    assert live_secret(svc, rotation="2024-06-01")["metadata"]["annotations"] == {ROTATED_FOR_ANNOTATION: "2024-06-01"}
    assert ROTATED_FOR_ANNOTATION not in (live_secret(svc)["metadata"].get("annotations") or {})


# --- resolve: read back, generate, rotate ------------------------------------------------------------------------


def test_passwords_are_read_back_from_the_live_secret(svc):
    assert credentials.resolve({}, live_secret(svc)) == Credentials(RABBIT_PW, REDIS_PW, "")


def test_passwords_read_back_are_stable_across_calls(svc):
    secret = live_secret(svc)
    first = credentials.resolve({}, secret)
    assert credentials.resolve({}, secret) == first
    assert credentials.resolve({"unrelated": "x"}, secret) == first


def test_a_secret_rebuilt_from_resolved_passwords_resolves_to_the_same(svc):
    creds = credentials.resolve({}, None)
    rebuilt = live_secret(
        svc,
        rabbitmq_url=messaging.amqp_url("shop.orders", creds.rabbitmq_password, "rabbitmq", 5672, "/"),
        redis_url=cache.redis_url("shop.orders", creds.redis_password, "redis", 6379, 0),
        rotation=creds.rotation,
    )
    assert credentials.resolve({}, rebuilt) == creds


def _assert_fresh(creds: Credentials) -> None:
    assert creds.rabbitmq_password not in (RABBIT_PW, "")
    assert creds.redis_password not in (REDIS_PW, "")
    assert len(creds.rabbitmq_password) >= 24
    assert len(creds.redis_password) >= 24
    assert creds.rabbitmq_password != creds.redis_password


def test_no_secret_generates_new_random_passwords():
    one, two = credentials.resolve({}, None), credentials.resolve({}, None)
    _assert_fresh(one)
    _assert_fresh(two)
    assert one.rabbitmq_password != two.rabbitmq_password
    assert one.redis_password != two.redis_password
    assert one.rotation == two.rotation == ""


def test_a_secret_without_urls_generates_new_passwords(svc):
    secret = builders.build_secret(svc, builders.secret_settings(svc))
    _assert_fresh(credentials.resolve({}, secret))


def test_a_missing_rabbitmq_url_regenerates_only_that_password(svc):
    secret = live_secret(svc, rabbitmq_url="")
    creds = credentials.resolve({}, secret)
    assert creds.redis_password == REDIS_PW
    assert creds.rabbitmq_password != RABBIT_PW
    assert len(creds.rabbitmq_password) >= 24


def test_a_missing_redis_url_regenerates_only_that_password(svc):
    creds = credentials.resolve({}, live_secret(svc, redis_url=""))
    assert creds.rabbitmq_password == RABBIT_PW
    assert creds.redis_password != REDIS_PW
    assert len(creds.redis_password) >= 24


def test_a_url_without_a_password_generates_one(svc):
    secret = live_secret(svc, rabbitmq_url="amqp://shop.orders@rabbitmq:5672/%2F")
    creds = credentials.resolve({}, secret)
    assert creds.redis_password == REDIS_PW
    assert len(creds.rabbitmq_password) >= 24


def test_a_secret_with_no_data_generates_passwords():
    _assert_fresh(credentials.resolve({}, {"metadata": {"name": "orders-platform"}}))
    _assert_fresh(credentials.resolve({}, {"metadata": {}, "data": None}))


def test_new_passwords_are_url_safe():
    creds = credentials.resolve({}, None)
    for pw in (creds.rabbitmq_password, creds.redis_password):
        assert messaging.amqp_url("u", pw, "h", 1, "v") == f"amqp://u:{pw}@h:1/v"


def test_a_new_rotation_token_generates_new_passwords(svc):
    creds = credentials.resolve({ROTATE_ANNOTATION: "2024-06-01"}, live_secret(svc))
    _assert_fresh(creds)
    assert creds.rotation == "2024-06-01"


def test_the_same_rotation_token_as_the_secret_keeps_the_passwords(svc):
    secret = live_secret(svc, rotation="2024-06-01")
    assert credentials.resolve({ROTATE_ANNOTATION: "2024-06-01"}, secret) == Credentials(
        RABBIT_PW, REDIS_PW, "2024-06-01"
    )


def test_another_rotation_token_than_the_secrets_rotates_again(svc):
    secret = live_secret(svc, rotation="2024-06-01")
    creds = credentials.resolve({ROTATE_ANNOTATION: "2024-07-01"}, secret)
    _assert_fresh(creds)
    assert creds.rotation == "2024-07-01"


def test_rotation_happens_once_then_the_new_passwords_stay(svc):
    annotations = {ROTATE_ANNOTATION: "r1"}
    rotated = credentials.resolve(annotations, live_secret(svc))
    after = live_secret(
        svc,
        rabbitmq_url=messaging.amqp_url("shop.orders", rotated.rabbitmq_password, "rabbitmq", 5672, "/"),
        redis_url=cache.redis_url("shop.orders", rotated.redis_password, "redis", 6379, 0),
        rotation=rotated.rotation,
    )
    assert credentials.resolve(annotations, after) == rotated


@pytest.mark.parametrize(
    "garbage",
    [
        "!!!not base64!!!",
        "bm90IGEgdXJsIQ",  # truncated: incorrect padding
        base64.b64encode(b"\xff\xfe\xfd\x00").decode(),  # valid base64, not UTF-8
        b64("not a url at all"),
        b64(""),
    ],
)
def test_garbage_in_the_secret_is_treated_as_missing(svc, garbage):
    secret = live_secret(svc)
    secret["data"]["RABBITMQ_URL"] = garbage
    creds = credentials.resolve({}, secret)
    assert creds.redis_password == REDIS_PW
    assert creds.rabbitmq_password != RABBIT_PW
    assert len(creds.rabbitmq_password) >= 24


# Regression (credentials._password_in): the base64 decoding is guarded, but urlsplit() is called outside
# the try block, and it raises ValueError("Invalid IPv6 URL") on a netloc with an unbalanced "[". A Secret
# whose URL was edited by hand into such a value makes resolve() raise on every resync, so the reconcile
# never gets to repair the Secret (the spec says hand-edited children come back).
@pytest.mark.parametrize("url", ["amqp://shop.orders:pw@[rabbitmq:5672/%2F", "redis://u:p@[::1/0"])
def test_a_malformed_url_in_the_secret_is_treated_as_missing(svc, url):
    secret = live_secret(svc)
    secret["data"]["RABBITMQ_URL"] = b64(url)
    creds = credentials.resolve({}, secret)
    assert creds.redis_password == REDIS_PW
    assert len(creds.rabbitmq_password) >= 24


# --- rabbitmq.password_matches -------------------------------------------------------------------------------


def rabbit_hash(password: str, digest=hashlib.sha256, salt: bytes | None = None) -> str:
    """What RabbitMQ stores: base64(salt4 + H(salt4 + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + digest(salt + password.encode()).digest()).decode()


SHA256 = "rabbit_password_hashing_sha256"
SHA512 = "rabbit_password_hashing_sha512"


def test_password_matches_its_sha256_hash():
    assert rabbitmq.password_matches(rabbit_hash("hunter2"), "hunter2", SHA256) is True


def test_password_does_not_match_another_password():
    stored = rabbit_hash("hunter2")
    assert rabbitmq.password_matches(stored, "hunter3", SHA256) is False
    assert rabbitmq.password_matches(stored, "", SHA256) is False
    assert rabbitmq.password_matches(stored, "hunter2 ", SHA256) is False


def test_password_matches_with_a_known_salt():
    salt = b"\x01\x02\x03\x04"
    stored = base64.b64encode(salt + hashlib.sha256(salt + b"pw").digest()).decode()
    assert stored == rabbit_hash("pw", salt=salt)
    assert rabbitmq.password_matches(stored, "pw", SHA256) is True
    # The salt is part of the hash: the same digest under another salt does not match.
    other = base64.b64encode(b"\x00\x00\x00\x00" + hashlib.sha256(salt + b"pw").digest()).decode()
    assert rabbitmq.password_matches(other, "pw", SHA256) is False


def test_password_matches_the_sha512_variant():
    stored = rabbit_hash("hunter2", hashlib.sha512)
    assert rabbitmq.password_matches(stored, "hunter2", SHA512) is True
    assert rabbitmq.password_matches(stored, "hunter3", SHA512) is False
    # The algorithm must be the one the hash was made with.
    assert rabbitmq.password_matches(stored, "hunter2", SHA256) is False
    assert rabbitmq.password_matches(rabbit_hash("hunter2"), "hunter2", SHA512) is False


@pytest.mark.parametrize("algorithm", ["rabbit_password_hashing_md5", "", "sha256", "bcrypt"])
def test_unknown_algorithm_never_matches(algorithm):
    assert rabbitmq.password_matches(rabbit_hash("hunter2"), "hunter2", algorithm) is False


def test_an_empty_hash_never_matches():
    assert rabbitmq.password_matches("", "", SHA256) is False
    assert rabbitmq.password_matches("", "hunter2", SHA256) is False


def test_password_matches_non_ascii_passwords():
    assert rabbitmq.password_matches(rabbit_hash("pässwörd✓"), "pässwörd✓", SHA256) is True
    assert rabbitmq.password_matches(rabbit_hash("pässwörd✓"), "passwLord", SHA256) is False


# --- unsettled: new passwords that must win the Secret before anyone gets them -----------------------------------


def test_passwords_read_back_are_settled(svc):
    live = live_secret(svc)
    assert credentials.unsettled(live_secret(svc), live) is False


def test_a_secret_to_create_is_unsettled(svc):
    assert credentials.unsettled(live_secret(svc), None) is True


@pytest.mark.parametrize("key", ["rabbitmq", "redis"])
def test_either_new_password_is_unsettled(svc, key: str):
    other = "another-password"
    wanted = live_secret(
        svc,
        rabbitmq_url=messaging.amqp_url("shop.orders", other, "rabbitmq", 5672, "/")
        if key == "rabbitmq"
        else RABBIT_URL,
        redis_url=cache.redis_url("shop.orders", other, "redis", 6379, 0) if key == "redis" else REDIS_URL,
    )
    assert credentials.unsettled(wanted, live_secret(svc)) is True


def test_a_secret_without_urls_has_no_password_to_settle(svc):
    # No broker or Redis for this service: the Secret carries no password, and resolve's unused
    # ones must not make every reconcile write it again.
    wanted = builders.build_secret(svc, builders.secret_settings(svc))
    assert credentials.unsettled(wanted, None) is False
    assert credentials.unsettled(wanted, wanted) is False


def test_the_same_passwords_elsewhere_are_settled(svc):
    # A new host or port rewrites the URL, not the password: an ordinary apply will do.
    moved = live_secret(
        svc,
        rabbitmq_url=messaging.amqp_url("shop.orders", RABBIT_PW, "rabbitmq.other", 5671, "/"),
        redis_url=cache.redis_url("shop.orders", REDIS_PW, "redis.other", 6380, 1),
    )
    assert credentials.unsettled(moved, live_secret(svc)) is False


def test_a_rotation_makes_the_new_passwords_unsettled(svc):
    live = live_secret(svc)
    creds = credentials.resolve({ROTATE_ANNOTATION: "2024-06-01"}, live)
    wanted = live_secret(
        svc,
        rabbitmq_url=messaging.amqp_url("shop.orders", creds.rabbitmq_password, "rabbitmq", 5672, "/"),
        redis_url=cache.redis_url("shop.orders", creds.redis_password, "redis", 6379, 0),
        rotation=creds.rotation,
    )
    assert credentials.unsettled(wanted, live) is True
