"""The operator writes exactly the variables of the contract the services read (platform_contract)."""

from __future__ import annotations

import pytest

from platform_contract import (
    BOT_VARIABLES,
    DATABASE_VARIABLES,
    SECRET_VARIABLES,
    PlatformSettings,
    data_url_variable,
    is_contract_variable,
)
from platform_operator import builders, messaging


@pytest.fixture
def full_svc(make_svc):
    return make_svc(
        type="bot",
        bot={"mode": "webhook", "tokenSecretRef": {"name": "t"}},
        ingress={"host": "bot.example.com"},
        dependsOn=["users-data"],
        messaging={"consumes": [{"queue": "q", "exchange": "e"}], "publishes": [{"name": "e"}]},
        env=[{"name": "MY_OWN", "value": "1"}],
    )


def test_every_secret_key_is_in_the_contract(full_svc):
    settings = builders.secret_settings(
        full_svc, "http://otel:4318", rabbitmq_url="amqp://u:p@h:5672/%2F", redis_url="redis://u:p@h:6379/0"
    )
    assert set(settings) == SECRET_VARIABLES


def test_every_platform_env_var_on_the_deployment_is_in_the_contract(full_svc, make_svc):
    data = make_svc(type="data", database={"engine": "postgres", "secretRef": {"name": "db"}})
    for svc in (full_svc, data):
        container = builders.build_deployment(svc, "hash")["spec"]["template"]["spec"]["containers"][0]
        platform_names = [e["name"] for e in container["env"] if e["name"] != "MY_OWN"]
        assert platform_names and all(is_contract_variable(n) for n in platform_names), platform_names
    names = {
        e["name"] for e in builders.build_deployment(data, "h")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert names == DATABASE_VARIABLES
    bot_names = {
        e["name"] for e in builders.build_deployment(full_svc, "h")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert bot_names >= BOT_VARIABLES


@pytest.mark.parametrize("name", ["users-data", "users", "a-b-c"])
def test_data_url_names_agree(name):
    assert data_url_variable(name) == builders.env_name_for_data(name)


def test_services_read_the_secret_as_the_operator_wrote_it(full_svc, monkeypatch):
    settings = builders.secret_settings(full_svc, rabbitmq_url="amqp://u:p@h:5672/%2F", redis_url="redis://x")
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    read = PlatformSettings()
    assert read.service_name == full_svc.name
    assert read.redis_key_prefix == full_svc.key_prefix
    assert read.key("idem", "42") == f"{full_svc.key_prefix}:idem:42"
    # Services are given, and look their queues up by, the broker's names: <namespace>.<queue>.
    queue = messaging.broker_name(full_svc.namespace, "q")
    consume = read.consume(queue)
    assert (consume.max_retries, consume.retry_exchange, consume.dead_letter_queue) == (
        3,
        f"{queue}.retry",
        f"{queue}.dlq",
    )
    assert read.rabbitmq_publishes == messaging.broker_name(full_svc.namespace, "e")
    assert read.consume("q") == consume  # the spec's own name finds it too, when only one entry has it
    with pytest.raises(KeyError):
        read.consume("other")
