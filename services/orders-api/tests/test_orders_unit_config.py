"""orders-api reads its settings from the variables the operator sets, and refuses to start, with
the fix in the message, when one it cannot work without is missing."""

from __future__ import annotations

import pytest

from orders_api.config import ConfigurationError, Settings

COMPLETE = {
    "REDIS_URL": "redis://u:p@127.0.0.1:1/0",
    "RABBITMQ_URL": "amqp://u:p@127.0.0.1:1/%2F",
    "RABBITMQ_PUBLISHES": "orders,audit",
    "DATA_USERS_DATA_URL": "http://users-data.demo.svc.cluster.local",
    "REDIS_KEY_PREFIX": "demo:orders-api",
    "IDEMPOTENCY_TTL_SECONDS": "3600",
}


def _settings(monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_operators_variables_are_read(monkeypatch):
    s = _settings(monkeypatch, COMPLETE)
    s.check()
    assert s.users_data_url == "http://users-data.demo.svc.cluster.local"
    assert s.events_exchange() == "orders"  # the first of spec.messaging.publishes
    assert s.key("idem", "k1") == "demo:orders-api:idem:k1"
    assert s.idempotency_ttl_seconds == 3600
    assert s.listen_port == 8000


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("DATA_USERS_DATA_URL", "add users-data to spec.dependsOn"),
        ("RABBITMQ_URL", "RABBITMQ_URL is not set"),
        ("REDIS_URL", "REDIS_URL is not set"),
        ("RABBITMQ_PUBLISHES", "add the orders exchange to spec.messaging.publishes"),
    ],
)
def test_a_missing_variable_stops_the_start_with_the_fix(monkeypatch, missing, message):
    for name in COMPLETE:
        monkeypatch.delenv(name, raising=False)
    s = _settings(monkeypatch, {k: v for k, v in COMPLETE.items() if k != missing})
    with pytest.raises(ConfigurationError, match=message):
        s.check()
