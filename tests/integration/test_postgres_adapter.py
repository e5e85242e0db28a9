"""The PostgreSQL door against the real server: what each service role may and may not do.

Every grant is tried from the other side, with the service's own credentials: its own database
opens, another service's does not, and it can make neither databases nor roles.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
import pytest
from it_helpers import make_service, require_env

from platform_operator import database, sweep
from platform_operator.database import DatabasePlan
from platform_operator.postgres import NameTaken, Postgres, PostgresUnavailable


def admin_url() -> str:
    return require_env("PLATFORM_POSTGRES_ADMIN_URL")["PLATFORM_POSTGRES_ADMIN_URL"]


def data_plan(namespace: str | None = None, name: str = "users") -> DatabasePlan:
    svc = make_service(
        name,
        namespace or f"it-{uuid.uuid4().hex[:8]}",
        type="data",
        image="users:1",
        database={"engine": "postgres", "provision": True},
    )
    plan = database.plan(svc)
    assert plan is not None
    return plan


@pytest.fixture
async def pg() -> AsyncIterator[Postgres]:
    p = Postgres(admin_url(), timeout=5)
    yield p
    await p.close()


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(admin_url())
    yield conn
    await conn.close()


@pytest.fixture
async def made(pg: Postgres) -> AsyncIterator[list[DatabasePlan]]:
    """Plans a test provisions: dropped afterwards, whatever the test did."""
    plans: list[DatabasePlan] = []
    yield plans
    for plan in plans:
        await pg.drop(plan)


async def login(pg: Postgres, role: str, password: str, dbname: str) -> asyncpg.Connection:
    return await asyncpg.connect(host=pg.host, port=pg.port, user=role, password=password, database=dbname, timeout=5)


async def test_provisions_a_role_owning_its_database_only(
    pg: Postgres, admin: asyncpg.Connection, made: list[DatabasePlan]
) -> None:
    plan = data_plan()
    made.append(plan)
    done = await pg.ensure(plan, "pw-one")
    assert f"database {plan.database}" in done.written

    conn = await login(pg, plan.role, "pw-one", plan.database)
    try:
        # It owns its database: tables of its own, in the schema public.
        await conn.execute("CREATE TABLE t (id int)")
        await conn.execute("INSERT INTO t VALUES (1)")
        # And nothing more: no database, no role, no superuser.
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute('CREATE DATABASE "not_allowed"')
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute('CREATE ROLE "not_allowed"')
    finally:
        await conn.close()
    row = await admin.fetchrow(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin"
        " FROM pg_roles WHERE rolname = $1",
        plan.role,
    )
    assert dict(row) == {
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolreplication": False,
        "rolbypassrls": False,
        "rolcanlogin": True,
    }


async def test_a_service_cannot_connect_to_another_services_database(pg: Postgres, made: list[DatabasePlan]) -> None:
    victim, attacker = data_plan(name="victim"), data_plan(name="attacker")
    made.extend([victim, attacker])
    await pg.ensure(victim, "victim-pw")
    await pg.ensure(attacker, "attacker-pw")
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
        await login(pg, attacker.role, "attacker-pw", victim.database)
    # PUBLIC holds no CONNECT on it either: a role made by hand is refused the same way.
    dsn = urlsplit(admin_url())
    outsider = f"it_outsider_{uuid.uuid4().hex[:8]}"
    async with pg_admin(admin_url()) as conn:
        await conn.execute(f"CREATE ROLE {outsider} LOGIN PASSWORD 'outsider-pw'")
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await asyncpg.connect(
                host=dsn.hostname, port=dsn.port, user=outsider, password="outsider-pw", database=victim.database
            )
    finally:
        async with pg_admin(admin_url()) as conn:
            await conn.execute(f"DROP ROLE {outsider}")


async def test_steady_state_writes_nothing_and_drift_is_repaired(
    pg: Postgres, admin: asyncpg.Connection, made: list[DatabasePlan]
) -> None:
    plan = data_plan()
    made.append(plan)
    await pg.ensure(plan, "pw")
    assert (await pg.ensure(plan, "pw")).written == []

    # A password changed by hand is set back.
    await admin.execute(f"ALTER ROLE {database.quote_ident(plan.role)} PASSWORD 'by-hand'")
    assert (await pg.ensure(plan, "pw")).written == [f"role {plan.role} password"]
    (await login(pg, plan.role, "pw", plan.database)).terminate()

    # Rights granted by hand are taken back.
    await admin.execute(f"ALTER ROLE {database.quote_ident(plan.role)} CREATEDB")
    assert f"role {plan.role} attributes" in (await pg.ensure(plan, "pw")).written

    # CONNECT given back to PUBLIC by hand is revoked again.
    await admin.execute(f"GRANT CONNECT ON DATABASE {database.quote_ident(plan.database)} TO PUBLIC")
    assert f"database {plan.database} PUBLIC revoked" in (await pg.ensure(plan, "pw")).written

    # The role dropped by hand (its database handed to the admin first, as PostgreSQL requires) comes back.
    await admin.execute(f"REASSIGN OWNED BY {database.quote_ident(plan.role)} TO CURRENT_USER")
    await admin.execute(f"DROP ROLE {database.quote_ident(plan.role)}")
    written = (await pg.ensure(plan, "pw")).written
    assert f"role {plan.role}" in written and f"database {plan.database} owner" in written
    (await login(pg, plan.role, "pw", plan.database)).terminate()


async def test_a_name_held_by_a_foreign_database_is_refused(
    pg: Postgres, admin: asyncpg.Connection, made: list[DatabasePlan]
) -> None:
    plan = data_plan()
    await admin.execute(f"CREATE DATABASE {database.quote_ident(plan.database)}")
    try:
        with pytest.raises(NameTaken):
            await pg.ensure(plan, "pw")
        # Nor does deletion touch it.
        assert await pg.drop(plan) == []
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", plan.database) == 1
    finally:
        await admin.execute(f"DROP DATABASE {database.quote_ident(plan.database)}")
        await admin.execute(f"DROP ROLE IF EXISTS {database.quote_ident(plan.role)}")


async def test_rows_are_found_before_a_drop_and_retire_disables_login(
    pg: Postgres, admin: asyncpg.Connection, made: list[DatabasePlan]
) -> None:
    plan = data_plan()
    await pg.ensure(plan, "pw")
    conn = await login(pg, plan.role, "pw", plan.database)
    await conn.execute("CREATE TABLE empty (id int); CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
    await conn.close()
    assert await pg.holds_rows(plan) == ["public.orders"]

    assert await pg.retire(plan) is True
    with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        await login(pg, plan.role, "pw", plan.database)

    assert await pg.drop(plan) == [f"database {plan.database}", f"role {plan.role}"]
    assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", plan.database) == 0
    assert await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", plan.role) == 0


async def test_an_unreachable_server_is_unavailable() -> None:
    parts = urlsplit(admin_url())
    closed = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:1").geturl()
    with pytest.raises(PostgresUnavailable):
        await Postgres(closed, timeout=2).ensure(data_plan(), "pw")


@asynccontextmanager
async def pg_admin(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_the_sweep_locks_only_marked_roles_whose_service_is_gone_and_keeps_their_data(
    pg: Postgres, admin: asyncpg.Connection, made: list[DatabasePlan]
) -> None:
    namespace = f"it-{uuid.uuid4().hex[:8]}"
    alive, gone = data_plan(namespace, "alive"), data_plan(namespace, "gone")
    made.extend([alive, gone])
    for plan in (alive, gone):
        await pg.ensure(plan, "pw")
    conn = await login(pg, gone.role, "pw", gone.database)
    await conn.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
    await conn.close()
    # A role made by hand in the same namespace's shape, without the operator's marker.
    by_hand = f"{namespace.replace('-', '_')}_by_hand"
    await admin.execute(f"CREATE ROLE {database.quote_ident(by_hand)} LOGIN PASSWORD 'pw'")
    try:
        job = sweep.UserSweep(None, None, interval=1, namespaces=(namespace,), postgres=pg)
        assert await job.run(lambda _ns, name: name == "alive") == [f"postgres {gone.role}"]
        with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError):
            await login(pg, gone.role, "pw", gone.database)
        assert await pg.holds_rows(gone) == ["public.orders"]  # the data stays
        (await login(pg, alive.role, "pw", alive.database)).terminate()
        assert await admin.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", by_hand) is True
        # Locked once: the next sweep has nothing to do; another namespace's sweep never looks.
        assert await job.run(lambda _ns, name: name == "alive") == []
        other = sweep.UserSweep(None, None, interval=1, namespaces=("elsewhere",), postgres=pg)
        assert await other.run(lambda _ns, _name: False) == []
    finally:
        await admin.execute(f"DROP ROLE {database.quote_ident(by_hand)}")


async def test_in_the_servers_own_database_a_service_role_makes_no_table_or_schema(
    pg: Postgres, made: list[DatabasePlan]
) -> None:
    plan = data_plan()
    made.append(plan)
    await pg.ensure(plan, "pw")
    conn = await login(pg, plan.role, "pw", "postgres")  # PUBLIC's CONNECT, as the server grants it
    try:
        for statement in ("CREATE TABLE planted (id int)", "CREATE SCHEMA planted"):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()
