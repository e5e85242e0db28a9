"""The Redis namespace, ACL user and seeded keys a PlatformService turns into."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlsplit

import pytest

from platform_operator import cache
from platform_operator.cache import CachePlan, SeedKey

PASSWORD = "s3cret-Pa55word_value"
PASSWORD_SHA256 = hashlib.sha256(PASSWORD.encode()).hexdigest()

CATEGORIES_ALLOWED = [
    "+@read",
    "+@write",
    "+@keyspace",
    "+@string",
    "+@hash",
    "+@list",
    "+@set",
    "+@sortedset",
    "+@stream",
    "+@bitmap",
    "+@hyperloglog",
    "+@geo",
    "+@pubsub",
    "+@transaction",
    "+@scripting",
    "+@connection",
]


def rules(make_kind, password: str = PASSWORD, **overrides) -> list[str]:
    return cache.plan(make_kind("worker", **overrides)).acl_rules(password)


# --- prefix and key pattern ---------------------------------------------------------------------------


def test_default_prefix_is_namespace_colon_name(make_kind):
    plan = cache.plan(make_kind("api"))
    assert plan == CachePlan(user="shop.orders", prefix="shop:orders", seeds=())
    assert plan.key_pattern == "shop:orders:*"


def test_default_prefix_follows_name_and_namespace(make_svc):
    plan = cache.plan(make_svc(type="worker", name="notifier", namespace="team-a"))
    assert (plan.user, plan.prefix, plan.key_pattern) == ("team-a.notifier", "team-a:notifier", "team-a:notifier:*")


def test_custom_prefix(make_kind):
    plan = cache.plan(make_kind("api", redis={"keyPrefix": "orders-v2"}))
    assert (plan.prefix, plan.key_pattern) == ("orders-v2", "orders-v2:*")


def test_user_name(make_kind):
    assert cache.user_name(make_kind("data")) == "shop.orders"


# --- ACL SETUSER rules -------------------------------------------------------------------------------------


def test_acl_rules_exact(make_kind):
    assert rules(make_kind) == [
        "reset",
        "on",
        f"#{PASSWORD_SHA256}",
        "~shop:orders:*",
        "resetchannels",
        "&shop:orders:*",
        "-@all",
        *CATEGORIES_ALLOWED,
        "-@dangerous",
        "-@admin",
    ]


def test_acl_rules_never_carry_the_password_in_clear(make_kind):
    out = rules(make_kind)
    assert not any(PASSWORD in r for r in out)
    assert f">{PASSWORD}" not in out
    assert f"#{PASSWORD_SHA256}" in out


def test_password_hash_is_sha256_hex():
    assert cache.password_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert cache.password_hash(PASSWORD) == PASSWORD_SHA256


def test_a_different_password_gives_a_different_hash_rule(make_kind):
    assert rules(make_kind, "one")[2] != rules(make_kind, "two")[2]
    assert rules(make_kind, "one")[2] == "#" + hashlib.sha256(b"one").hexdigest()


def test_reset_comes_first_and_resetchannels_before_the_channel_pattern(make_kind):
    out = rules(make_kind)
    assert out[:2] == ["reset", "on"]
    assert out.index("resetchannels") < out.index("&shop:orders:*")


def test_minus_all_comes_before_every_grant_and_dangerous_and_admin_close(make_kind):
    out = rules(make_kind)
    grants = [i for i, r in enumerate(out) if r.startswith("+@")]
    assert len(grants) == len(CATEGORIES_ALLOWED)
    assert out.index("-@all") < min(grants)
    assert max(grants) < out.index("-@dangerous") < out.index("-@admin")
    assert out[-2:] == ["-@dangerous", "-@admin"]


def test_no_grant_of_everything_or_of_admin_commands(make_kind):
    out = rules(make_kind)
    for forbidden in ("+@all", "allcommands", "allkeys", "allchannels", "~*", "&*", "+@admin", "+@dangerous", "nopass"):
        assert forbidden not in out


def test_rules_follow_a_custom_prefix(make_kind):
    out = rules(make_kind, redis={"keyPrefix": "orders-v2"})
    assert "~orders-v2:*" in out
    assert "&orders-v2:*" in out
    assert [r for r in out if r[0] in "~&"] == ["~orders-v2:*", "&orders-v2:*"]


# --- seeded keys -----------------------------------------------------------------------------------------------


def test_seeds_get_the_full_key_and_ttl(make_kind):
    svc = make_kind(
        "api",
        redis={"keys": [{"key": "feature:x", "value": "on", "ttlSeconds": 300}, {"key": "motd", "value": "hello"}]},
    )
    assert cache.plan(svc).seeds == (
        SeedKey("shop:orders:feature:x", "on", 300),
        SeedKey("shop:orders:motd", "hello", None),
    )


def test_seeds_use_a_custom_prefix(make_kind):
    svc = make_kind("api", redis={"keyPrefix": "o2", "keys": [{"key": "k", "value": "v"}]})
    (seed,) = cache.plan(svc).seeds
    assert seed == SeedKey("o2:k", "v", None)
    assert seed.key.startswith(cache.plan(svc).key_pattern[:-1])


# --- the Redis URL ------------------------------------------------------------------------------------------------


def test_redis_url_plain():
    assert cache.redis_url("shop.orders", "pw", "redis", 6379, 0) == "redis://shop.orders:pw@redis:6379/0"


def test_redis_url_quotes_user_and_password():
    url = cache.redis_url("shop.orders", "p@ss:w/rd?#%", "redis.local", 6380, 3)
    assert url == "redis://shop.orders:p%40ss%3Aw%2Frd%3F%23%25@redis.local:6380/3"


@pytest.mark.parametrize("password", ["plain", "a b@c:d/e%f", "ünï©ødé", "x" * 64])
def test_redis_url_round_trips(password):
    parts = urlsplit(cache.redis_url("shop.orders", password, "redis", 6379, 2))
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == ("shop.orders", password)
    assert (parts.hostname, parts.port, parts.path) == ("redis", 6379, "/2")
