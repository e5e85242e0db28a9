"""The one door to PostgreSQL (asyncpg): each data service's role and database, made, kept, removed.

Every answer is sorted into three: done; refused for good (`PostgresRefused`: a name held by a
database or role the operator did not make, a privilege the admin lacks), which retrying the same
statements cannot change; unavailable (`PostgresUnavailable`: no connection, a timeout, the server
shutting down), which a retry with backoff outlives. The server's own words go to the operator's
log only: status and Events, which tenants read, get ours. Reads first and writes only what
differs, so a resync that finds everything in place writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from platform_operator import database, observability
from platform_operator.database import DatabasePlan

log = logging.getLogger("platform_operator")
T = TypeVar("T")

# SQLSTATE classes that say the server or the connection is the problem, not the statement:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown), 58 system error.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")


class PostgresError(Exception):
    """Base of what this door raises."""


class PostgresUnavailable(PostgresError):
    """PostgreSQL could not be reached, timed out or is shutting down: retry with backoff."""


class PostgresRefused(PostgresError):
    """PostgreSQL (or the operator, before asking it) refused: retrying the same cannot succeed."""


class NameTaken(PostgresRefused):
    """A database or role of the service's name exists and does not carry the operator's marker for it."""


@dataclass
class Provisioned:
    written: list[str] = field(default_factory=list)


def _plain_dsn(url: str) -> str:
    """asyncpg takes postgresql:// (a SQLAlchemy-style postgresql+asyncpg:// is accepted too)."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith("postgres") else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme))


class Postgres:
    def __init__(self, admin_url: str, *, password: str = "", timeout: float = 10.0) -> None:
        self.dsn = _plain_dsn(admin_url)
        self._password = password or None  # given apart: used where the URL holds none
        self.timeout = timeout
        parts = urlsplit(self.dsn)
        self.host, self.port = parts.hostname or "localhost", parts.port or 5432
        self._version: int | None = None

    async def close(self) -> None:
        """Nothing is held between calls (one connection per call)."""

    @asynccontextmanager
    async def _connect(self, dbname: str | None = None) -> AsyncIterator[asyncpg.Connection]:
        kwargs: dict[str, Any] = {"timeout": self.timeout, "command_timeout": self.timeout}
        if self._password:
            kwargs["password"] = self._password
        if dbname:
            kwargs["database"] = dbname
        conn = await asyncpg.connect(self.dsn, **kwargs)
        try:
            yield conn
        finally:
            await conn.close(timeout=self.timeout)

    async def _call(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """Runs `work` under an overall deadline and sorts whatever went wrong."""
        try:
            with observability.outside_call("postgres", what.split()[0]):  # a bounded label
                return await asyncio.wait_for(work(), 3 * self.timeout)
        except PostgresError:
            raise
        except (TimeoutError, OSError, asyncpg.exceptions.InterfaceError) as exc:
            log.warning("PostgreSQL %s: %r", what, exc)
            raise PostgresUnavailable(f"PostgreSQL unreachable ({type(exc).__name__})") from exc
        except asyncpg.PostgresError as exc:
            sqlstate = str(getattr(exc, "sqlstate", "") or "")
            log.warning("PostgreSQL %s: %s (SQLSTATE %s)", what, exc, sqlstate)
            if sqlstate[:2] in _UNAVAILABLE_CLASSES or isinstance(exc, asyncpg.exceptions.CannotConnectNowError):
                raise PostgresUnavailable(f"PostgreSQL unavailable (SQLSTATE {sqlstate})") from exc
            raise PostgresRefused(
                f"PostgreSQL refused to {what} (SQLSTATE {sqlstate}); the operator's log has its answer"
            ) from exc

    # ------------------------------------------------------------------ provisioning

    async def ensure(self, plan: DatabasePlan, password: str) -> Provisioned:
        """The role and its database in the wanted shape, the password the one given."""
        return await self._call(f"provision {plan.database}", lambda: self._ensure(plan, password))

    async def _ensure(self, plan: DatabasePlan, password: str) -> Provisioned:
        done = Provisioned()
        async with self._connect() as conn:
            if self._version is None:
                self._version = int(await conn.fetchval("SHOW server_version_num"))
            role = await conn.fetchrow(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,"
                " shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1",
                plan.role,
            )
            if role is not None and role["comment"] != plan.marker:
                raise NameTaken(f"a role named {plan.role} exists and was not made by the operator for this service")
            db = await conn.fetchrow(
                "SELECT shobj_description(d.oid, 'pg_database') AS comment, r.rolname AS owner,"
                " EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
                "         WHERE a.grantee = 0) AS public_granted"
                " FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
                plan.database,
            )
            if db is not None and db["comment"] != plan.marker:
                raise NameTaken(
                    f"a database named {plan.database} exists and was not made by the operator for this service"
                )
            fresh_role = role is None
            if fresh_role:
                await conn.execute(database.create_role(plan, password))
                await conn.execute(database.comment_role(plan))
                done.written.append(f"role {plan.role}")
            else:
                wrong = [a for a in database.WRONG_ATTRIBUTES if role[a]] + (
                    [] if role["rolcanlogin"] else ["rolcanlogin"]
                )
                if wrong:
                    await conn.execute(database.restrict_role(plan, wrong))
                    done.written.append(f"role {plan.role} attributes")
            member = await conn.fetchval("SELECT pg_has_role(current_user, $1, 'USAGE')", plan.role)
            if not member:
                await conn.execute(database.grant_role_to_admin(plan))
            if db is None:
                await conn.execute(database.create_database(plan))
                await conn.execute(database.comment_database(plan))
                await conn.execute(database.revoke_public(plan))
                done.written.append(f"database {plan.database}")
                if self._version < database.PUBLIC_SCHEMA_CREATE_DEFAULT_UNTIL:
                    async with self._connect(plan.database) as inside:
                        await inside.execute(database.REVOKE_PUBLIC_SCHEMA_CREATE)
            else:
                if db["owner"] != plan.role:
                    await conn.execute(database.set_owner(plan))
                    done.written.append(f"database {plan.database} owner")
                if db["public_granted"]:
                    await conn.execute(database.revoke_public(plan))
                    done.written.append(f"database {plan.database} PUBLIC revoked")
        if not fresh_role and not await self._logs_in(plan, password):
            async with self._connect() as conn:
                await conn.execute(database.set_password(plan, password))
            done.written.append(f"role {plan.role} password")
        return done

    async def _logs_in(self, plan: DatabasePlan, password: str) -> bool:
        """Whether the role logs in to its database with `password`: the server keeps only a
        verifier, so trying is the one way to compare without writing."""
        try:
            conn = await asyncpg.connect(
                host=self.host,
                port=self.port,
                user=plan.role,
                password=password,
                database=plan.database,
                timeout=self.timeout,
            )
        except (asyncpg.exceptions.InvalidPasswordError, asyncpg.exceptions.InvalidAuthorizationSpecificationError):
            return False
        await conn.close(timeout=self.timeout)
        return True

    # ------------------------------------------------------------------ deletion

    async def retire(self, plan: DatabasePlan) -> bool:
        """deletionPolicy Retain: the database stays, its role may no longer log in. True when it did something."""
        return await self.retire_role(plan.role, plan.marker)

    async def retire_role(self, role: str, marker: str) -> bool:
        """The role, where it carries `marker` and still logs in, may no longer log in (its database
        stays). True when it did something."""
        return await self._call(f"retire {role}", lambda: self._retire(role, marker))

    async def _retire(self, role_name: str, marker: str) -> bool:
        async with self._connect() as conn:
            role = await conn.fetchrow(
                "SELECT rolcanlogin, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1",
                role_name,
            )
            if role is None or role["comment"] != marker or not role["rolcanlogin"]:
                return False
            await conn.execute(database.disable_login(role_name))
            return True

    async def holds_rows(self, plan: DatabasePlan) -> list[str]:
        """The tables of the service's database that hold at least one row (schema-qualified)."""
        return await self._call(f"look into {plan.database}", lambda: self._holds_rows(plan))

    async def _holds_rows(self, plan: DatabasePlan) -> list[str]:
        async with self._connect() as conn:
            ours = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') = $2 FROM pg_database WHERE datname = $1",
                plan.database,
                plan.marker,
            )
        if not ours:
            return []
        found = []
        async with self._connect(plan.database) as inside:
            tables = await inside.fetch(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
            )
            for t in tables:
                qualified = f"{database.quote_ident(t['nspname'])}.{database.quote_ident(t['relname'])}"
                probe = f"SELECT EXISTS (SELECT 1 FROM {qualified})"  # noqa: S608  # nosec B608 (names quoted by quote_ident)
                if await inside.fetchval(probe):
                    found.append(f"{t['nspname']}.{t['relname']}")
        return found

    async def drop(self, plan: DatabasePlan) -> list[str]:
        """deletionPolicy Delete: the database (its connections ended) and the role, where they are ours."""
        return await self._call(f"drop {plan.database}", lambda: self._drop(plan))

    async def _drop(self, plan: DatabasePlan) -> list[str]:
        dropped = []
        async with self._connect() as conn:
            db_ours = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') = $2 FROM pg_database WHERE datname = $1",
                plan.database,
                plan.marker,
            )
            role_ours = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_authid') = $2 FROM pg_roles WHERE rolname = $1",
                plan.role,
                plan.marker,
            )
            if db_ours:
                if role_ours:  # no new connection while the database goes
                    await conn.execute(database.disable_login(plan.role))
                await conn.execute(database.drop_database(plan.database))
                dropped.append(f"database {plan.database}")
            if role_ours:
                await conn.execute(database.drop_role(plan.role))
                dropped.append(f"role {plan.role}")
        return dropped

    async def service_roles(self) -> dict[str, tuple[str, str]]:
        """The roles the operator made for services that may still log in: role -> the (namespace,
        name) of the PlatformService its marker names."""

        async def work() -> dict[str, tuple[str, str]]:
            async with self._connect() as conn:
                rows = await conn.fetch(
                    "SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles"
                    " WHERE rolcanlogin AND shobj_description(oid, 'pg_authid') LIKE $1",
                    database.MARKER_PREFIX + "%",
                )
            owners = {r["rolname"]: database.marked_service(r["comment"]) for r in rows}
            return {role: owner for role, owner in sorted(owners.items()) if owner is not None}

        return await self._call("list service roles", work)
