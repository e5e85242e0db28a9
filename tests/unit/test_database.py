"""Names and statements of a provisioned database: pure, so checked here in milliseconds."""

from __future__ import annotations

from typing import Any

import pytest

from platform_operator import builders, database
from platform_operator.model import PlatformService


def svc(namespace: str = "shop", name: str = "users", **db: Any) -> PlatformService:
    spec = {"type": "data", "image": "i", "database": db or {"engine": "postgres", "provision": True}}
    return PlatformService.from_body({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def test_names_are_readable_deterministic_and_fit_postgres():
    name = database.identifier("shop", "users")
    assert name.startswith("shop_users_") and name == database.identifier("shop", "users")
    long = database.identifier("n" * 63, "s" * 52)
    assert len(long.encode()) <= database.MAX_IDENTIFIER


@pytest.mark.parametrize(
    ("a", "b"),
    [(("a-b", "c"), ("a", "b-c")), (("team-a", "users"), ("team-b", "users")), (("x" * 63, "s1"), ("x" * 63, "s2"))],
)
def test_two_services_never_derive_the_same_name(a: tuple[str, str], b: tuple[str, str]):
    assert database.identifier(*a) != database.identifier(*b)


def test_only_a_postgres_provision_gets_a_plan():
    plan = database.plan(svc())
    assert plan is not None and plan.database == plan.role and plan.marker.endswith("shop/users")
    assert database.plan(svc(engine="postgres", secretRef={"name": "db"})) is None
    assert database.plan(svc(engine="mongo", secretRef={"name": "db"})) is None


def test_statements_quote_every_name_and_never_carry_the_password():
    plan = database.DatabasePlan(database='we"ird', role='we"ird', marker="it's")
    assert database.create_database(plan) == 'CREATE DATABASE "we""ird" OWNER "we""ird"'
    assert database.comment_database(plan).endswith("IS 'it''s'")
    statement = database.set_password(plan, "s3cr3t-pw")
    assert "s3cr3t-pw" not in statement and "SCRAM-SHA-256$4096:" in statement
    assert database.restrict_role(plan, ["rolcreatedb", "rolcanlogin"]) == 'ALTER ROLE "we""ird" NOCREATEDB LOGIN'


def test_the_scram_verifier_has_postgres_shape_and_a_fresh_salt():
    one, two = database.scram_verifier("pw"), database.scram_verifier("pw")
    assert one != two
    assert database.scram_verifier("pw", salt=b"0" * 16) == database.scram_verifier("pw", salt=b"0" * 16)


def test_database_url_goes_in_the_secret_and_not_in_the_env():
    s = svc()
    plan = database.plan(s)
    assert plan is not None
    url = database.database_url(plan, "p@ss/word", "pg", 5432)
    assert url == f"postgresql://{plan.role}:p%40ss%2Fword@pg:5432/{plan.database}"
    assert builders.secret_settings(s, database_url=url)["DATABASE_URL"] == url
    env = builders.build_deployment(s, "h")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "DATABASE_ENGINE", "value": "postgres"} in env
    assert not any(e["name"] == "DATABASE_URL" for e in env)


def test_a_marker_names_its_service_back():
    assert database.marked_service(database.marker("shop", "users-data")) == ("shop", "users-data")


@pytest.mark.parametrize(
    "comment",
    [None, "", "made by hand", database.MARKER_PREFIX, database.MARKER_PREFIX + "shop", database.MARKER_PREFIX + "/x",
     database.MARKER_PREFIX + "shop/", database.MARKER_PREFIX + "shop/a/b", "x" + database.marker("shop", "users")],
)  # fmt: skip
def test_a_comment_that_is_not_a_marker_names_no_service(comment):
    assert database.marked_service(comment) is None


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        (dict(type="data", database={"engine": "mongo", "provision": True}), "EngineNotProvisioned", "not mongo"),
        (dict(type="worker", database={"engine": "postgres", "provision": True}), "NotADataService", "type worker"),
    ],
    ids=["mongo", "worker"],
)
async def test_a_provision_the_crd_would_refuse_is_told_which_rule_it_breaks(make_svc, spec, reason, words):
    from platform_operator import provision
    from platform_operator.status import Outcome

    svc = make_svc(image="x:1", **spec)
    assert database.plan(svc) is None
    outcome = Outcome(status={})
    cond = await provision.provision_database(svc, None, None, None, None, False, outcome, lambda *_: None)  # type: ignore[arg-type]
    assert (cond.status, cond.reason) == ("False", reason)
    assert words in cond.message
