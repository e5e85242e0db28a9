"""How reconcile turns the broker door's three answers into QueuesReady: done, refused (the spec must
change: a condition in the operator's words and the slow retry), unavailable (back-off)."""

from __future__ import annotations

from typing import Any

from fakes import provision_queues_with

from platform_operator import messaging
from platform_operator.conditions import Condition
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import BrokerError, BrokerRefused, BrokerUnavailable, ProvisionResult
from platform_operator.status import Outcome


class Broker:
    """Answers provision with `answer`: a result, or an error to raise."""

    def __init__(self, answer: ProvisionResult | BrokerError) -> None:
        self.answer = answer
        self.asked: list[messaging.Topology] = []

    async def provision(self, topo: messaging.Topology, password: str) -> ProvisionResult:
        self.asked.append(topo)
        if isinstance(self.answer, BrokerError):
            raise self.answer
        return self.answer

    async def queue_stats(self, names: Any) -> list[dict[str, Any]]:
        return [{"name": n, "messages": 0, "consumers": 0} for n in names]


def provision(svc: PlatformService, broker: Broker) -> tuple[Condition, Outcome]:
    cond, _, outcome = provision_queues_with(broker, svc)
    return cond, outcome


def consumer(make_svc: Any, namespace: str = "shop") -> PlatformService:
    spec = {"type": "worker", "messaging": {"consumes": [{"queue": "q", "exchange": "orders"}]}}
    return make_svc(namespace=namespace, **spec)  # type: ignore[no-any-return]


def test_done(make_svc):
    cond, outcome = provision(consumer(make_svc), Broker(ProvisionResult()))
    assert (cond.status, cond.reason) == ("True", "Provisioned")
    assert outcome.retry == [] and outcome.refused == {}


def test_unavailable_is_retried_with_back_off(make_svc):
    cond, outcome = provision(consumer(make_svc), Broker(BrokerUnavailable("RabbitMQ unreachable over AMQP")))
    assert (cond.status, cond.reason) == ("False", "RabbitMQUnavailable")
    assert outcome.retry and outcome.refused == {}


def test_refused_is_a_condition_that_says_to_change_the_spec_and_no_fast_retry(make_svc):
    why = "RabbitMQ rejected PUT of policy p (HTTP 400); the operator's log has its answer"
    cond, outcome = provision(consumer(make_svc), Broker(BrokerRefused(why)))
    assert (cond.status, cond.reason) == ("False", "RabbitMQRefused")
    assert why in cond.message and "change the spec" in cond.message
    assert outcome.retry == [] and outcome.refused == {"RabbitMQ": why}


def test_a_namespace_whose_names_the_broker_reserves_is_refused_without_asking_it(make_svc):
    broker = Broker(ProvisionResult())
    cond, outcome = provision(consumer(make_svc, "amq"), broker)
    assert (cond.status, cond.reason) == ("False", "ReservedName")
    assert "amq.q" in cond.message and "another namespace" in cond.message
    assert broker.asked == [] and "RabbitMQ" in outcome.refused
