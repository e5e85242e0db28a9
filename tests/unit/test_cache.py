"""The Redis namespace, ACL user and seeded keys a PlatformService turns into."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_operator import cache
from platform_operator.cache import CachePlan, SeedKey

PASSWORD = "s3cret-Pa55word_value"
PASSWORD_SHA256 = hashlib.sha256(PASSWORD.encode()).hexdigest()

# The commands the ACL takes back one by one after its grants: filed with ordinary data commands, yet
# they see or change more than the service's prefix. Which ones, and which categories it grants, the
# integration suite checks against a real Redis (ACL DRYRUN); here, where they stand in the rules.
PAST_THE_PREFIX = [r for r in cache.COMMAND_RULES if r.startswith("-") and not r.startswith("-@")]


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


def test_custom_prefix_is_relative_to_the_namespace(make_kind):
    plan = cache.plan(make_kind("api", redis={"keyPrefix": "orders-v2"}))
    assert (plan.prefix, plan.key_pattern) == ("shop:orders-v2", "shop:orders-v2:*")


@pytest.mark.parametrize(
    ("namespace", "key_prefix", "prefix"),
    [
        ("shop", "notify", "shop:notify"),
        ("shop", "cache:v2", "shop:cache:v2"),
        # A keyPrefix naming another namespace stays under its own.
        ("shop", "billing:orders", "shop:billing:orders"),
        ("shop", "billing", "shop:billing"),
        ("team-a", "shop", "team-a:shop"),
        ("shop", None, "shop:orders"),
        ("shop", "", "shop:orders"),
    ],
)
def test_every_prefix_lies_under_its_namespace(make_svc, namespace, key_prefix, prefix):
    redis = {} if key_prefix is None else {"keyPrefix": key_prefix}
    svc = make_svc(type="worker", namespace=namespace, redis=redis)
    assert svc.key_prefix == prefix
    plan = cache.plan(svc)
    assert plan.prefix == prefix
    assert plan.key_pattern.startswith(f"{namespace}:")


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
        *cache.COMMAND_RULES,
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


def test_minus_all_comes_before_every_grant_and_the_removals_close(make_kind):
    out = rules(make_kind)
    grants = [i for i, r in enumerate(out) if r.startswith("+")]
    assert grants and all(out[i].startswith("+@") for i in grants), "grants are whole categories only"
    assert out.index("-@all") < min(grants)
    assert max(grants) < out.index("-@dangerous") < out.index("-@admin")
    # ACL rules apply in order: a removal before a grant that covers it would be undone.
    assert out[-len(PAST_THE_PREFIX) - 2 :] == ["-@dangerous", "-@admin", *PAST_THE_PREFIX]


@pytest.mark.parametrize("rule", PAST_THE_PREFIX)
def test_commands_that_reach_past_the_prefix_are_removed_after_every_grant(make_kind, rule):
    out = rules(make_kind)
    assert out.count(rule) == 1
    assert out.index(rule) > out.index("-@admin") > max(i for i, r in enumerate(out) if r.startswith("+"))
    assert "+" + rule[1:] not in out


def test_no_grant_of_everything_or_of_admin_commands(make_kind):
    out = rules(make_kind)
    for forbidden in ("+@all", "allcommands", "allkeys", "allchannels", "~*", "&*", "+@admin", "+@dangerous", "nopass"):
        assert forbidden not in out


def test_rules_follow_a_custom_prefix(make_kind):
    out = rules(make_kind, redis={"keyPrefix": "orders-v2"})
    assert "~shop:orders-v2:*" in out
    assert "&shop:orders-v2:*" in out
    assert [r for r in out if r[0] in "~&"] == ["~shop:orders-v2:*", "&shop:orders-v2:*"]


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
    assert seed == SeedKey("shop:o2:k", "v", None)
    assert seed.key.startswith(cache.plan(svc).key_pattern[:-1])


# --- prefix claims: equal or nested prefixes overlap, siblings do not -----------------------------------------


def overlaps(one: str, other: str) -> bool:
    """Would a service with prefix `one` find `other`'s holder among the claims it must not meet?"""
    return bool(set(cache.overlapping_claims(one)) & set(cache.prefix_claims(other)))


def test_prefix_claims_hold_the_prefix_and_each_one_above_it():
    assert cache.prefix_claims("shop:a:b") == [
        ("redis-prefix", "shop:a:b"),
        ("redis-prefix-above", "shop"),
        ("redis-prefix-above", "shop:a"),
    ]
    assert cache.prefix_claims("shop:a") == [("redis-prefix", "shop:a"), ("redis-prefix-above", "shop")]


def test_overlapping_claims_ask_for_equal_under_and_above():
    assert cache.overlapping_claims("shop:a:b") == [
        ("redis-prefix", "shop:a:b"),  # the same prefix
        ("redis-prefix-above", "shop:a:b"),  # a prefix under it
        ("redis-prefix", "shop"),  # prefixes above it
        ("redis-prefix", "shop:a"),
    ]


@pytest.mark.parametrize(
    ("one", "other", "overlap"),
    [
        ("shop:a", "shop:a", True),
        ("shop:a", "shop:a:b", True),
        ("shop:a:b", "shop:a", True),
        ("shop:a", "shop:a:b:c", True),
        ("shop:a:b:c", "shop:a", True),
        ("shop:a", "shop:ab", False),
        ("shop:ab", "shop:a", False),
        ("shop:a", "shop:a-b", False),
        ("shop:a", "shop:a.b", False),
        ("shop:a:b", "shop:a:c", False),
        ("shop:a:b", "shop:a:bc", False),
        ("shop:a", "billing:a", False),
        ("shop:billing", "billing:x", False),
    ],
    ids=lambda v: str(v),
)
def test_prefixes_overlap_when_equal_or_nested(one, other, overlap):
    assert overlaps(one, other) is overlap


SEGMENTS = st.lists(st.sampled_from(["a", "b", "ab", "a.b", "a-b"]), min_size=1, max_size=4).map(":".join)


@given(one=SEGMENTS, other=SEGMENTS)
def test_overlap_is_equality_or_nesting_at_a_colon(one, other):
    expected = one == other or one.startswith(other + ":") or other.startswith(one + ":")
    assert overlaps(one, other) is expected
    assert overlaps(other, one) is expected


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
