"""The typed spec: the defaults a user relies on, and agreement with the CRD's own defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_operator.model import PlatformService

CRD = Path(__file__).resolve().parents[2] / "crds" / "platformservices.platform.dev.yaml"


def test_defaults_of_a_minimal_spec(make_svc):
    svc = make_svc(type="api")
    spec = svc.spec
    assert spec.replicas == 1
    assert spec.port == 8000
    assert spec.health.liveness_path == "/health"
    assert spec.health.readiness_path == "/ready"
    assert spec.deletion_policy == "Retain"
    assert spec.redis.idempotency_ttl_seconds == 86400
    assert spec.resources is None
    assert (spec.command, spec.args, spec.env, spec.depends_on) == ((), (), (), ())
    assert svc.key_prefix == "shop:orders"
    assert svc.secret_name == "orders-platform"


def test_metadata_is_read(make_svc):
    svc = make_svc(type="worker", name="mailer", namespace="ops", uid="u-1", generation=7)
    assert (svc.name, svc.namespace, svc.uid, svc.generation) == ("mailer", "ops", "u-1", 7)
    assert svc.key_prefix == "ops:mailer"


def test_nested_defaults(make_svc):
    svc = make_svc(
        type="bot",
        bot={"tokenSecretRef": {"name": "tg"}},
        messaging={"consumes": [{"queue": "q", "exchange": "x"}], "publishes": [{"name": "events"}]},
    )
    assert svc.spec.bot is not None
    assert svc.spec.bot.mode == "polling"
    assert svc.spec.bot.token_secret_ref.key == "token"
    consume = svc.spec.messaging.consumes[0]
    assert (consume.routing_keys, consume.prefetch, consume.max_retries) == (("#",), 10, 3)
    assert (consume.retry_delay_seconds, consume.dead_letter) == (10, True)
    assert (consume.message_ttl_seconds, consume.max_length) == (None, None)
    assert svc.spec.messaging.publishes[0].type == "topic"

    data = make_svc(type="data", database={"engine": "postgres", "secretRef": {"name": "db"}})
    assert data.spec.database is not None
    assert data.spec.database.secret_ref.key == "dsn"
    ingress = make_svc(type="api", ingress={"host": "a.example.com"}).spec.ingress
    assert ingress is not None
    assert ingress.path == "/"


def test_camel_case_fields_are_read(make_svc):
    svc = make_svc(
        type="worker",
        dependsOn=["users"],
        deletionPolicy="Delete",
        redis={"keyPrefix": "p", "idempotencyTTLSeconds": 5, "keys": [{"key": "k", "value": "v", "ttlSeconds": 9}]},
        messaging={"consumes": [{"queue": "q", "exchange": "x", "messageTTLSeconds": 30, "maxLength": 100}]},
    )
    assert svc.spec.depends_on == ("users",)
    assert svc.spec.deletion_policy == "Delete"
    assert svc.key_prefix == "shop:p"
    assert svc.spec.redis.idempotency_ttl_seconds == 5
    assert svc.spec.redis.keys[0].ttl_seconds == 9
    assert svc.spec.messaging.consumes[0].message_ttl_seconds == 30
    assert svc.spec.messaging.consumes[0].max_length == 100


def test_tenancy_fields_are_read_and_default_to_nothing_shared(make_svc):
    svc = make_svc(
        type="worker",
        messaging={
            "publishes": [{"name": "orders", "sharedWith": ["billing", "audit"]}, {"name": "private"}],
            "consumes": [
                {"queue": "q", "exchange": "payments", "exchangeNamespace": "billing"},
                {"queue": "r", "exchange": "orders"},
            ],
        },
    )
    orders, private = svc.spec.messaging.publishes
    assert (orders.shared_with, private.shared_with) == (("billing", "audit"), ())
    foreign, own = svc.spec.messaging.consumes
    assert (foreign.exchange_namespace, own.exchange_namespace) == ("billing", None)


def test_unknown_fields_are_ignored(make_svc):
    svc = make_svc(type="api", futureField={"x": 1}, ingress={"host": "a.example.com", "newThing": True})
    assert svc.spec.type == "api"


def test_from_body_without_uid_or_generation():
    svc = PlatformService.from_body(
        {"metadata": {"name": "a", "namespace": "b"}, "spec": {"type": "api", "image": "i"}}
    )
    assert (svc.uid, svc.generation) == ("", 1)


@pytest.mark.parametrize(
    ("spec", "has_service", "webhook", "wants_ingress"),
    [
        ({"type": "data", "database": {"engine": "postgres", "secretRef": {"name": "db"}}}, True, False, False),
        ({"type": "api"}, True, False, False),
        ({"type": "api", "ingress": {"host": "a.example.com"}}, True, False, True),
        ({"type": "bot", "bot": {"tokenSecretRef": {"name": "t"}}}, False, False, False),
        ({"type": "bot", "bot": {"mode": "webhook", "tokenSecretRef": {"name": "t"}}}, True, True, False),
        (
            {"type": "bot", "bot": {"mode": "webhook", "tokenSecretRef": {"name": "t"}}, "ingress": {"host": "b.io"}},
            True,
            True,
            True,
        ),
        ({"type": "worker"}, False, False, False),
    ],
    ids=["data", "api", "api-ingress", "bot-polling", "bot-webhook", "bot-webhook-ingress", "worker"],
)
def test_what_each_kind_takes(make_svc, spec, has_service, webhook, wants_ingress):
    svc = make_svc(**spec)
    assert (svc.has_service, svc.is_webhook_bot, svc.wants_ingress) == (has_service, webhook, wants_ingress)


# --- the model applies the same defaults as the CRD ----------------------------------------------


def test_crd_parses_as_yaml():
    # Regression: the descriptions of spec.resources.requests/limits were once plain YAML scalars
    # containing ": " ("e.g. {cpu: 100m}"), which made the whole file unparseable (kubectl apply failed
    # with "yaml: line 166: mapping values are not allowed in this context").
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "PlatformService"


def _crd_spec_schema() -> dict[str, Any]:
    try:
        crd = yaml.safe_load(CRD.read_text())
    except yaml.YAMLError:
        pytest.skip("the CRD does not parse; test_crd_parses_as_yaml reports it")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _defaults(schema: dict[str, Any], path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "default" in schema:
        out[path] = schema["default"]
    for key, sub in (schema.get("properties") or {}).items():
        out.update(_defaults(sub, f"{path}.{key}" if path else key))
    if "items" in schema:
        out.update(_defaults(schema["items"], f"{path}[]"))
    return out


def test_every_crd_default_is_also_the_models():
    # An object stored before a default existed (or a plain dict in a test) must read the same as one
    # the API server defaulted.
    bare = PlatformService.from_body(
        {
            "metadata": {"name": "a", "namespace": "b"},
            "spec": {
                "type": "bot",
                "image": "i",
                "health": {},
                "database": {"engine": "postgres", "secretRef": {"name": "db"}},
                "messaging": {"publishes": [{"name": "e"}], "consumes": [{"queue": "q", "exchange": "e"}]},
                "redis": {},
                "ingress": {"host": "h.example.com"},
                "bot": {"tokenSecretRef": {"name": "t"}},
                "autoscaling": {"maxReplicas": 3},
            },
        }
    ).model_dump(by_alias=True)["spec"]

    def read(path: str) -> Any:
        value: Any = bare
        for part in path.split("."):
            # "messaging.consumes[]" reads the first item of the list.
            value = value[part[:-2]][0] if part.endswith("[]") else value[part]
        return value

    defaults = _defaults(_crd_spec_schema())
    assert defaults, "the CRD declares defaults"
    mismatched = {path: (default, read(path)) for path, default in defaults.items() if read(path) != default}
    assert mismatched == {}
