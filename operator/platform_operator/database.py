"""A data service's own PostgreSQL database and role: names, the marker, the SQL, as pure values.

Names derive from the namespace and the service alone, so what one namespace declares never names
another's database. PostgreSQL identifiers hold at most 63 bytes and are global to the server: the
readable part is cut to fit and a digest of `<namespace>/<name>` always follows it, so two services
never derive the same name (whatever hyphens or lengths they use). Statements are built here, with
every identifier and literal quoted, and run by the one door to PostgreSQL (postgres.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from platform_operator.model import PlatformService

MAX_IDENTIFIER = 63
DIGEST_LENGTH = 12  # hex characters: 48 bits, too many for anyone to search for a name that meets another's
# What the operator writes as the COMMENT on the databases and roles it made: one it finds without
# its own marker (made by hand, or by someone else) is never taken over, altered or dropped.
MARKER_PREFIX = "platform-operator: PlatformService "
# Attributes of every service role: nothing but logging in to its own database. INHERIT stays (the
# default): the owner reaches its schema public through the implicit role pg_database_owner.
# Only a superuser may name SUPERUSER, REPLICATION or BYPASSRLS at all, even to say no: a new role
# has none of them, and one that gained them by hand is put back only by name (restrict_role).
ROLE_ATTRIBUTES = "LOGIN NOCREATEDB NOCREATEROLE"
# pg_roles column -> the ALTER ROLE word that takes it back.
WRONG_ATTRIBUTES = {
    "rolsuper": "NOSUPERUSER",
    "rolcreatedb": "NOCREATEDB",
    "rolcreaterole": "NOCREATEROLE",
    "rolreplication": "NOREPLICATION",
    "rolbypassrls": "NOBYPASSRLS",
}
SCRAM_ITERATIONS = 4096


@dataclass(frozen=True)
class DatabasePlan:
    """What the service gets on the PostgreSQL server: a role owning a database of the same name."""

    database: str
    role: str
    marker: str  # the COMMENT on both


def identifier(namespace: str, name: str) -> str:
    """`<namespace>_<name>` in lower case with `-` as `_`, cut so that `_<digest>` fits in 63 bytes."""
    readable = re.sub(r"[^a-z0-9_]", "_", f"{namespace}_{name}".lower())
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:DIGEST_LENGTH]
    return f"{readable[: MAX_IDENTIFIER - DIGEST_LENGTH - 1]}_{digest}"


def marker(namespace: str, name: str) -> str:
    return f"{MARKER_PREFIX}{namespace}/{name}"


def marked_service(comment: str | None) -> tuple[str, str] | None:
    """The (namespace, name) a marker names; None for a comment that is not one."""
    if not comment or not comment.startswith(MARKER_PREFIX):
        return None
    namespace, sep, name = comment[len(MARKER_PREFIX) :].partition("/")
    return (namespace, name) if sep and namespace and name and "/" not in name else None


def wants_database(svc: PlatformService) -> bool:
    db = svc.spec.database
    return svc.spec.type == "data" and db is not None and db.provision and db.engine == "postgres"


def plan(svc: PlatformService) -> DatabasePlan | None:
    """The database and role of a service that asks the operator for one; None otherwise."""
    if not wants_database(svc):
        return None
    name = identifier(svc.namespace, svc.name)
    return DatabasePlan(database=name, role=name, marker=marker(svc.namespace, svc.name))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677). Given to
    ALTER ROLE ... PASSWORD in place of the password itself, so the password never reaches the
    server's statement log. (The operator's passwords are ASCII: SASLprep leaves them unchanged.)"""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def create_role(plan: DatabasePlan, password: str) -> str:
    return f"CREATE ROLE {quote_ident(plan.role)} {ROLE_ATTRIBUTES} PASSWORD {quote_literal(scram_verifier(password))}"


def restrict_role(plan: DatabasePlan, wrong: list[str]) -> str:
    """Back to the attributes of a service role (someone granted it more, or took its login, by hand):
    `wrong` names the pg_roles columns that differ ("rolcanlogin" among them when it cannot log in)."""
    words = ["LOGIN" if w == "rolcanlogin" else WRONG_ATTRIBUTES[w] for w in wrong]
    return f"ALTER ROLE {quote_ident(plan.role)} {' '.join(words)}"


def set_password(plan: DatabasePlan, password: str) -> str:
    return f"ALTER ROLE {quote_ident(plan.role)} PASSWORD {quote_literal(scram_verifier(password))}"


def disable_login(role: str) -> str:
    return f"ALTER ROLE {quote_ident(role)} NOLOGIN"


def comment_role(plan: DatabasePlan) -> str:
    return f"COMMENT ON ROLE {quote_ident(plan.role)} IS {quote_literal(plan.marker)}"


def grant_role_to_admin(plan: DatabasePlan) -> str:
    """The admin becomes a member of the service role: PostgreSQL lets only the owner (or its
    members) create a database for it, change its ownership, look into it and drop it."""
    return f"GRANT {quote_ident(plan.role)} TO CURRENT_USER"


def create_database(plan: DatabasePlan) -> str:
    return f"CREATE DATABASE {quote_ident(plan.database)} OWNER {quote_ident(plan.role)}"


def set_owner(plan: DatabasePlan) -> str:
    return f"ALTER DATABASE {quote_ident(plan.database)} OWNER TO {quote_ident(plan.role)}"


def comment_database(plan: DatabasePlan) -> str:
    return f"COMMENT ON DATABASE {quote_ident(plan.database)} IS {quote_literal(plan.marker)}"


def revoke_public(plan: DatabasePlan) -> str:
    """PUBLIC may connect to (and make temporary tables in) every new database by default."""
    return f"REVOKE ALL ON DATABASE {quote_ident(plan.database)} FROM PUBLIC"


# Before PostgreSQL 15 every role may create objects in the schema public of every database.
REVOKE_PUBLIC_SCHEMA_CREATE = "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
PUBLIC_SCHEMA_CREATE_DEFAULT_UNTIL = 150000


def drop_database(database: str) -> str:
    return f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)"


def drop_role(role: str) -> str:
    return f"DROP ROLE IF EXISTS {quote_ident(role)}"


def database_url(plan: DatabasePlan, password: str, host: str, port: int) -> str:
    """The service's DATABASE_URL: its own role, its own database."""
    user, secret, dbname = quote(plan.role, safe=""), quote(password, safe=""), quote(plan.database, safe="")
    return f"postgresql://{user}:{secret}@{host}:{port}/{dbname}"
