"""The broker view built from the management API's lists (pure: no broker)."""

from __future__ import annotations

from platform_operator.rabbitmq import BrokerView


def test_bindings_are_kept_per_queue_and_only_from_an_exchange_to_a_queue():
    view = BrokerView.from_lists(
        users=[{"name": "ns.svc", "password_hash": "h", "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        permissions=[{"user": "ns.svc", "vhost": "/", "configure": "^$", "write": "^orders$", "read": "^q$"}],
        exchanges=[{"name": "orders", "type": "topic"}, {"name": "", "type": "direct"}],
        queues=[{"name": "q", "arguments": {}, "messages": 3, "consumers": 1}],
        bindings=[
            {"source": "", "destination": "q", "destination_type": "queue", "routing_key": "q"},  # default exchange
            {"source": "orders", "destination": "q", "destination_type": "queue", "routing_key": "order.*"},
            {"source": "orders", "destination": "audit", "destination_type": "exchange", "routing_key": "#"},
        ],
        policies=[{"name": "platform.ns.svc.q", "pattern": "^q$", "definition": {"max-length": 10}}],
    )
    assert [b["routing_key"] for b in view.bindings["q"]] == ["order.*"]
    assert "audit" not in view.bindings
    assert view.users["ns.svc"]["password_hash"] == "h"
    assert view.permissions["ns.svc"]["write"] == "^orders$"
    assert view.queues["q"]["messages"] == 3
    assert set(view.exchanges) == {"orders", ""}
    assert view.policies["platform.ns.svc.q"]["definition"] == {"max-length": 10}


def test_an_empty_vhost_is_an_empty_view():
    view = BrokerView.from_lists([], [], [], [], [], [])
    assert (view.users, view.queues, view.bindings, view.policies) == ({}, {}, {}, {})
