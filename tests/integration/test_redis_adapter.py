"""The Redis adapter against a real Redis server with ACLs."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from it_helpers import gives_up_by_its_deadline, make_service, require_env, trickling_proxy
from redis.exceptions import AuthenticationError, NoPermissionError

from platform_operator import cache
from platform_operator.redis_store import CacheRefused, CacheUnavailable, RedisStore


def connect_as(user: str, password: str) -> aioredis.Redis:
    env = require_env("PLATFORM_REDIS_SERVICE_HOST", "PLATFORM_REDIS_SERVICE_PORT")
    url = cache.redis_url(
        user, password, env["PLATFORM_REDIS_SERVICE_HOST"], int(env["PLATFORM_REDIS_SERVICE_PORT"]), 0
    )
    return aioredis.from_url(url, decode_responses=True)


async def test_user_is_confined_to_its_prefix_and_safe_commands(store: RedisStore, admin: aioredis.Redis):
    mine = cache.plan(make_service(type="api", image="x"))
    other = cache.plan(make_service(type="api", image="x"))
    assert await store.ensure_user(mine, "pw-mine") is True
    await admin.set(f"{other.prefix}:secret", "not yours")

    r = connect_as(mine.user, "pw-mine")
    try:
        await r.set(f"{mine.prefix}:k", "v")
        assert await r.get(f"{mine.prefix}:k") == "v"
        with pytest.raises(NoPermissionError):
            await r.get(f"{other.prefix}:secret")
        with pytest.raises(NoPermissionError):
            await r.flushall()
        with pytest.raises(NoPermissionError):
            await r.config_get("*")
        with pytest.raises(NoPermissionError):
            await r.keys("*")
    finally:
        await r.aclose()


# What the service's ACL lets through on its own keys: a command of each category it is granted
# (the data types, pub/sub, MULTI, scripts, the connection) ...
GRANTED = [
    ("GET", "{p}:k"),
    ("SET", "{p}:k", "v"),
    ("EXPIRE", "{p}:k", "10"),
    ("HSET", "{p}:h", "f", "v"),
    ("LPUSH", "{p}:l", "v"),
    ("SADD", "{p}:s", "v"),
    ("ZADD", "{p}:z", "1", "v"),
    ("XADD", "{p}:x", "*", "f", "v"),
    ("SETBIT", "{p}:b", "7", "1"),
    ("PFADD", "{p}:hll", "v"),
    ("GEOADD", "{p}:g", "13.4", "52.5", "berlin"),
    ("PUBLISH", "{p}:events", "hello"),
    ("MULTI",),
    ("EVAL", "return 1", "1", "{p}:k"),
    ("PING",),
]
# ... and what it refuses even there: commands that see or change more than the prefix (the first
# nine are filed under granted categories, so the ACL removes them one by one), admin and dangerous ones.
REFUSED = [
    ("SCAN", "0"),
    ("RANDOMKEY",),
    ("DBSIZE",),
    ("PUBSUB", "CHANNELS"),
    ("FUNCTION", "LIST"),
    ("FCALL", "f", "1", "{p}:k"),
    ("FCALL_RO", "f", "1", "{p}:k"),
    ("SCRIPT", "FLUSH"),
    ("SCRIPT", "KILL"),
    ("KEYS", "*"),
    ("FLUSHALL",),
    ("CONFIG", "GET", "*"),
    ("ACL", "LIST"),
    ("CLIENT", "LIST"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN",),
    ("GET", "{other}:k"),
]


async def test_the_acl_grants_each_allowed_category_and_refuses_what_reaches_past_the_prefix(
    store: RedisStore, admin: aioredis.Redis
):
    mine = cache.plan(make_service(type="api", image="x"))
    other = cache.plan(make_service(type="api", image="x"))
    assert await store.ensure_user(mine, "pw-mine") is True

    async def dry_run(command: tuple[str, ...]) -> str:
        """ACL DRYRUN: Redis's own verdict on the user running the command, without running it."""
        words = [w.format(p=mine.prefix, other=other.prefix) for w in command]
        return str(await admin.execute_command("ACL", "DRYRUN", mine.user, *words))

    assert {" ".join(c): await dry_run(c) for c in GRANTED} == {" ".join(c): "OK" for c in GRANTED}
    verdicts = {" ".join(c): await dry_run(c) for c in REFUSED}
    assert [c for c, verdict in verdicts.items() if "has no permissions" not in verdict] == []


async def test_second_ensure_writes_nothing_and_a_new_password_is_applied(store: RedisStore):
    plan = cache.plan(make_service(type="worker", image="x"))
    assert await store.ensure_user(plan, "first") is True
    assert await store.ensure_user(plan, "first") is False
    assert await store.ensure_user(plan, "second") is True
    r = connect_as(plan.user, "second")
    try:
        assert await r.ping() is True
    finally:
        await r.aclose()
    stale = connect_as(plan.user, "first")
    with pytest.raises(AuthenticationError):
        await stale.ping()
    await stale.aclose()


async def test_a_user_removed_out_of_band_is_created_again(store: RedisStore, admin: aioredis.Redis):
    plan = cache.plan(make_service(type="worker", image="x"))
    await store.ensure_user(plan, "pw")
    await admin.acl_deluser(plan.user)
    assert await store.ensure_user(plan, "pw") is True
    assert await store.get_user(plan.user) is not None


async def test_seeded_keys_never_overwrite_user_data(store: RedisStore, admin: aioredis.Redis):
    svc = make_service(
        type="api",
        image="x",
        redis={"keys": [{"key": "feature", "value": "default"}, {"key": "banner", "value": "hi", "ttlSeconds": 300}]},
    )
    plan = cache.plan(svc)
    await admin.set(f"{plan.prefix}:feature", "user-changed")
    assert await store.seed(plan) == 1
    assert await admin.get(f"{plan.prefix}:feature") == "user-changed"
    assert await admin.get(f"{plan.prefix}:banner") == "hi"
    assert 0 < await admin.ttl(f"{plan.prefix}:banner") <= 300
    assert await store.seed(plan) == 0


async def test_delete_keys_removes_only_the_prefix_in_batches(store: RedisStore, admin: aioredis.Redis):
    plan = cache.plan(make_service(type="api", image="x"))
    neighbour = f"{plan.prefix}x:keep"  # shares the text but not the "prefix:" namespace
    async with admin.pipeline(transaction=False) as pipe:
        for i in range(1200):
            pipe.set(f"{plan.prefix}:k{i}", i)
        pipe.set(neighbour, 1)
        await pipe.execute()
    assert await store.delete_keys(plan.prefix, batch=500) == 1200
    assert await admin.exists(neighbour) == 1
    assert [k async for k in admin.scan_iter(match=f"{plan.prefix}:*")] == []
    await admin.delete(neighbour)


async def test_delete_user(store: RedisStore):
    plan = cache.plan(make_service(type="api", image="x"))
    await store.ensure_user(plan, "pw")
    assert await store.delete_user(plan.user) is True
    assert await store.get_user(plan.user) is None


async def test_unreachable_redis_is_reported_as_unavailable():
    s = RedisStore(f"redis://default:x@127.0.0.1:1/{uuid.uuid4().int % 1}", timeout=1)
    with pytest.raises(CacheUnavailable, match="unreachable"):
        await s.ensure_user(cache.plan(make_service(type="api", image="x")), "pw")
    await s.close()


async def test_an_admin_password_given_apart_from_the_url_reaches_redis_intact(admin: aioredis.Redis):
    """As the chart runs the operator: PLATFORM_REDIS_URL without credentials, the password (here
    with every character a URL would mangle) in PLATFORM_REDIS_ADMIN_PASSWORD."""
    from platform_operator.settings import OperatorSettings

    password, user = "p@ss/w#rd%", f"admin-{uuid.uuid4().hex[:6]}"
    await admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    env = require_env("PLATFORM_REDIS_SERVICE_HOST", "PLATFORM_REDIS_SERVICE_PORT")
    settings = OperatorSettings(
        redis_url=f"redis://{user}@{env['PLATFORM_REDIS_SERVICE_HOST']}:{env['PLATFORM_REDIS_SERVICE_PORT']}/0",
        redis_admin_password=password,
    )
    store = RedisStore(settings.redis_url, password=settings.redis_admin_password)
    try:
        plan = cache.plan(make_service(type="api", image="x"))
        assert await store.ensure_user(plan, "pw") is True
        assert await store.get_user(plan.user) is not None
    finally:
        await store.close()
        await admin.acl_deluser(user)


async def test_a_redis_that_lost_its_users_is_noticed_by_the_marker(store: RedisStore, admin: aioredis.Redis):
    from platform_operator.redis_store import MARKER_USER

    assert await store.users_lost() is False  # sets the marker, or finds it from an earlier run
    assert await store.users_lost() is False
    await admin.acl_deluser(MARKER_USER)  # as a restart without persistence leaves it
    assert await store.users_lost() is True
    assert await store.users_lost() is False  # set again on the way
    marker = await store.get_user(MARKER_USER)
    assert marker is not None and "off" in marker["flags"] and not marker["passwords"]


async def test_users_are_saved_to_the_acl_file_of_a_server_that_has_one(tmp_path):
    """A Redis started with an ACL file: every change of the operator's is saved there, so a
    restart finds the users."""
    import asyncio
    import shutil
    import socket
    import subprocess

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server not installed: run through `make test-e2e` (hack/backends.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    acl = tmp_path / "users.acl"
    acl.write_text("user default on nopass ~* &* +@all\n")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--aclfile", str(acl), "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)  # fmt: skip
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    try:
        for _ in range(50):
            try:
                await store.get_user("default")
                break
            except CacheUnavailable:
                await asyncio.sleep(0.1)
        plan = cache.plan(make_service(type="api", image="x"))
        assert await store.ensure_user(plan, "pw") is True
        for _ in range(50):
            if f"user {plan.user} " in acl.read_text():
                break
            await asyncio.sleep(0.1)
        assert f"~{plan.key_pattern}" in acl.read_text()
        await store.delete_user(plan.user)
        for _ in range(50):
            if f"user {plan.user} " not in acl.read_text():
                break
            await asyncio.sleep(0.1)
        assert f"user {plan.user} " not in acl.read_text()
    finally:
        await store.close()
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_call_redis_rejects_is_refused_not_retried(store: RedisStore):
    """An error reply to the call itself (here a user name Redis does not accept) cannot succeed
    on a retry: CacheRefused, in the operator's words, without Redis's answer (tenants read it)."""
    plan = cache.CachePlan(user="no spaces allowed", prefix=f"it-{uuid.uuid4().hex[:8]}", seeds=())
    with pytest.raises(CacheRefused, match="Redis refused ACL SETUSER as given") as caught:
        await store.ensure_user(plan, "pw")
    assert "spaces" not in str(caught.value)
    assert "spaces" in str(caught.value.__cause__).lower()  # the log gets Redis's answer


async def test_an_admin_without_the_rights_is_unavailable_not_refused(admin: aioredis.Redis):
    """NOPERM to the operator's own admin user is its configuration, not the service's spec: retried
    with back-off (CacheUnavailable) and named as such."""
    env = require_env("PLATFORM_REDIS_SERVICE_HOST", "PLATFORM_REDIS_SERVICE_PORT")
    user, password = f"weak-{uuid.uuid4().hex[:6]}", "weak-pw"
    await admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@read"])
    host, port = env["PLATFORM_REDIS_SERVICE_HOST"], env["PLATFORM_REDIS_SERVICE_PORT"]
    weak = RedisStore(f"redis://{user}:{password}@{host}:{port}/0")
    try:
        with pytest.raises(CacheUnavailable, match="NOPERM"):
            await weak.ensure_user(cache.plan(make_service(type="api", image="x")), "pw")
    finally:
        await weak.close()
        await admin.acl_deluser(user)


async def test_a_redis_slower_than_the_deadline_is_unavailable():
    """A proxy that passes the real server's answer on one byte every 0.3 s: no read ever reaches
    the socket timeout (5 s); the call's deadline is reached."""
    env = require_env("PLATFORM_REDIS_URL", "PLATFORM_REDIS_SERVICE_HOST", "PLATFORM_REDIS_SERVICE_PORT")
    host, real = env["PLATFORM_REDIS_SERVICE_HOST"], env["PLATFORM_REDIS_SERVICE_PORT"]
    async with trickling_proxy(host, int(real)) as port:
        url = env["PLATFORM_REDIS_URL"].replace(f"{host}:{real}", f"127.0.0.1:{port}")
        assert f":{port}" in url
        slow = RedisStore(url, timeout=5, deadline=2)
        await gives_up_by_its_deadline(slow, CacheUnavailable, "did not answer ACL LIST within 2s")
