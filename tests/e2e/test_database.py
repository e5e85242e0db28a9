"""A data service's own PostgreSQL database through the operator: provisioned, repaired, deleted.

Runs against the PostgreSQL the operator is configured with (PLATFORM_POSTGRES_ADMIN_URL, from
`hack/postgres.sh env`; on kind the chart's PostgreSQL, forwarded by hack/kind.sh, with the admin
password apart in PLATFORM_POSTGRES_ADMIN_PASSWORD); the tests look at it with the same admin role,
and log in with the service's own DATABASE_URL as its pods would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from e2e_kube import (
    RESYNC_SECONDS,
    apply,
    cond_is,
    condition,
    events,
    eventually,
    get,
    kubectl,
    local_servers,
    psvc,
    reachable,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[2]


def admin_url() -> str:
    url = os.environ.get("PLATFORM_POSTGRES_ADMIN_URL")
    if not url:
        pytest.fail('PLATFORM_POSTGRES_ADMIN_URL not set: eval "$(hack/postgres.sh env)"', pytrace=False)
    return url


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _admin_connect() -> asyncpg.Connection:
    # As the chart runs the operator (kind), the admin password is apart from the URL.
    return await asyncpg.connect(admin_url(), password=os.environ.get("PLATFORM_POSTGRES_ADMIN_PASSWORD") or None)


async def _admin_fetchval(query: str, *args: Any) -> Any:
    conn = await _admin_connect()
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _admin_execute(*statements: str) -> None:
    conn = await _admin_connect()
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _query(url: str, query: str) -> Any:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def data_service(**database: Any) -> dict[str, Any]:
    # example/users:1: on kind, the suite's stand-in app (hack/kind.sh), so the pods become Ready.
    return psvc(
        "users", type="data", image="example/users:1", database={"engine": "postgres", "provision": True, **database}
    )


def database_url(ns: str, name: str = "users") -> str:
    """The service's DATABASE_URL, pointed where this process reaches the server (kind: a forward)."""
    secret = get("secret", f"{name}-platform", ns)
    assert secret is not None
    return reachable(base64.b64decode(secret["data"]["DATABASE_URL"]).decode())


def database_of(ns: str, name: str = "users") -> str:
    obj = get("psvc", name, ns)
    assert obj is not None
    return str(obj["status"]["database"]["name"])


def exists(kind: str, name: str) -> bool:
    table, column = ("pg_database", "datname") if kind == "database" else ("pg_roles", "rolname")
    return bool(run(_admin_fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", name)))


def postgres(command: str) -> None:
    subprocess.run([str(ROOT / "hack" / "postgres.sh"), command], check=True, timeout=120, capture_output=True)


def test_a_data_service_gets_its_own_database_and_its_url_logs_in(ns: str) -> None:
    apply(data_service(), ns)
    obj = wait_ready("users", ns)
    assert condition(obj, "DatabaseReady")["reason"] == "Provisioned"
    db = database_of(ns)
    assert db.startswith(f"{ns.replace('-', '_')}_users_")
    url = database_url(ns)
    assert run(_query(url, "SELECT current_database()")) == db
    assert run(_query(url, "SELECT current_user")) == obj["status"]["database"]["user"]
    # The Deployment takes it from the credentials Secret, not from an env entry of its own.
    deployment = get("deployment", "users", ns)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
    assert {"name": "DATABASE_ENGINE", "value": "postgres"} in env
    assert not any(e["name"] == "DATABASE_URL" for e in env)


def test_a_role_dropped_by_hand_is_recreated(ns: str) -> None:
    apply(data_service(), ns)
    wait_ready("users", ns)
    role = database_of(ns)
    # As a DBA would: the database handed to the admin first (a role owning one cannot be dropped).
    run(_admin_execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER', f'DROP ROLE "{role}"'))
    eventually(lambda: exists("role", role), timeout=RESYNC_SECONDS * 10, what="the role back")
    url = database_url(ns)
    eventually(
        lambda: run(_query(url, "SELECT current_user")) == role, timeout=RESYNC_SECONDS * 10, what="a login again"
    )
    owner = run(_admin_fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", role))
    assert owner == role


@local_servers
def test_postgres_outage_is_reported_and_converges_after_restart(ns: str) -> None:
    apply(data_service(), ns)
    wait_ready("users", ns)
    postgres("stop")
    try:
        obj = cond_is("users", ns, "DatabaseReady", "False", "PostgresUnavailable", timeout=RESYNC_SECONDS * 10)
        assert condition(obj, "Ready")["status"] == "False"
    finally:
        postgres("start")
    wait_ready("users", ns, timeout=120)
    assert run(_query(database_url(ns), "SELECT 1")) == 1


def test_delete_under_retain_keeps_the_database_and_disables_the_login(ns: str) -> None:
    apply(data_service(), ns)
    wait_ready("users", ns)
    db, url = database_of(ns), database_url(ns)
    kubectl("delete", "psvc", "users", "-n", ns, "--timeout=60s")
    assert exists("database", db) and exists("role", db)
    assert run(_admin_fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", db)) is False
    with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        run(_query(url, "SELECT 1"))
    run(_admin_execute(f'DROP DATABASE "{db}"', f'DROP ROLE "{db}"'))


def test_delete_under_delete_keeps_a_database_holding_rows_unless_asked(ns: str) -> None:
    spec = data_service()
    spec["spec"]["deletionPolicy"] = "Delete"
    apply(spec, ns)
    wait_ready("users", ns)
    db, url = database_of(ns), database_url(ns)
    run(_execute(url, "CREATE TABLE users (id int); INSERT INTO users VALUES (1)"))
    kubectl("delete", "psvc", "users", "-n", ns, "--timeout=60s")
    assert exists("database", db), "a database holding rows is kept"
    kept = [e for e in events(ns) if e["reason"] == "DatabaseKept"]
    assert kept and "public.users" in kept[0]["message"]

    # Asked for explicitly, it goes with its rows. (The same name: the role and database kept above.)
    spec["spec"]["database"]["deleteWithData"] = True
    apply(spec, ns)
    wait_ready("users", ns)
    assert database_of(ns) == db
    kubectl("delete", "psvc", "users", "-n", ns, "--timeout=60s")
    assert not exists("database", db) and not exists("role", db)


def test_an_empty_database_goes_under_delete(ns: str) -> None:
    spec = data_service()
    spec["spec"]["deletionPolicy"] = "Delete"
    apply(spec, ns)
    wait_ready("users", ns)
    db = database_of(ns)
    kubectl("delete", "psvc", "users", "-n", ns, "--timeout=60s")
    assert not exists("database", db) and not exists("role", db)
    assert any(e["reason"] == "DatabaseDeleted" for e in events(ns))


def test_a_name_held_by_a_foreign_database_is_refused(ns: str) -> None:
    from platform_operator.database import identifier

    taken = identifier(ns, "users")
    run(_admin_execute(f'CREATE DATABASE "{taken}"'))
    try:
        apply(data_service(), ns)
        obj = cond_is("users", ns, "DatabaseReady", "False", "DatabaseNameTaken")
        assert condition(obj, "Ready")["status"] == "False"
        secret = get("secret", "users-platform", ns)
        assert secret is not None and "DATABASE_URL" in secret["data"]  # for when the name is freed
        kubectl("patch", "psvc", "users", "-n", ns, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Delete"}}')
        kubectl("delete", "psvc", "users", "-n", ns, "--timeout=60s")
        assert exists("database", taken), "never dropped: the operator did not make it"
    finally:
        run(_admin_execute(f'DROP DATABASE IF EXISTS "{taken}"', f'DROP ROLE IF EXISTS "{taken}"'))
