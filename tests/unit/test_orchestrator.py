"""The reconcile and the cleanup as a whole, against in-memory fakes of their doors (fakes.py).

The real code runs: reconcile.reconcile (lock, children, RabbitMQ, Redis, PostgreSQL, status),
cleanup.cleanup, and the kopf child handler for the echo; the claims come from the real kopf index
functions of handlers.py, computed over the PlatformServices the fake API server holds. What the
e2e suite shows against real servers, these show in a fraction of a second each, one door at a time.
"""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from fakes import FakeKube, FakePostgres, FakeRabbitMQ, FakeRedis, platform_service

from platform_operator import cleanup, conditions, handlers, reconcile
from platform_operator.backends import Backends, Monitoring
from platform_operator.model import KIND, PlatformService
from platform_operator.settings import OperatorSettings
from platform_operator.state import ReconcileState
from platform_operator.status import Outcome

NS = "shop"
HOLDER_INDEXES = (handlers.ingress_claims, handlers.queue_claims, handlers.tenancy_claims, handlers.service_types)
READY_PODS = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}


@dataclass
class World:
    """One operator (its state and backends) over one fake cluster and fake outside systems."""

    kube: FakeKube = field(default_factory=FakeKube)
    rabbit: FakeRabbitMQ = field(default_factory=FakeRabbitMQ)
    redis: FakeRedis = field(default_factory=FakeRedis)
    postgres: FakePostgres = field(default_factory=FakePostgres)
    state: ReconcileState = field(default_factory=ReconcileState)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)  # (object, type, reason, message)
    backends: Backends = field(init=False)

    def __post_init__(self) -> None:
        self.backends = Backends(
            rabbitmq=self.rabbit,  # type: ignore[arg-type]
            redis=self.redis,  # type: ignore[arg-type]
            postgres=self.postgres,  # type: ignore[arg-type]
            settings=OperatorSettings(),
            monitoring=Monitoring(),
        )

    def add(self, name: str, *, created: str = "2026-01-01T00:00:00Z", namespace: str = NS, **spec: Any) -> None:
        self.kube.put(platform_service(name, namespace, created=created, **spec))

    def emit(self, body: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((str(body["metadata"]["name"]), type_, reason, message))

    def reasons(self, name: str) -> list[str]:
        return [reason for obj, _, reason, _ in self.events if obj == name]

    async def indexes(self) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
        """kopf's indexes as handlers.py builds them from every PlatformService (and our Ingresses)."""
        out: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
        for (kind, namespace, name), obj in list(self.kube.objects.items()):
            meta = obj["metadata"]
            if kind == KIND:
                for index in HOLDER_INDEXES:
                    found = await index(namespace=namespace, name=name, body=obj, meta=meta, spec=obj["spec"])
                    for key, holder in (found or {}).items():
                        out[key].append(holder)
            elif kind == "Ingress":
                found = await handlers.live_ingress_hosts(namespace=namespace, meta=meta, spec=obj["spec"])
                for key, holder in found.items():
                    out[key].append(holder)
        return out

    async def reconcile(self, name: str, *, namespace: str = NS, external: bool = True) -> Outcome | None:
        index = await self.indexes()
        return await reconcile.reconcile(
            namespace,
            name,
            self.kube,  # type: ignore[arg-type]
            self.backends,
            self.state,
            claims=lambda key: list(index.get(key, [])),
            emit=self.emit,
            external=external,
        )

    def status(self, name: str, namespace: str = NS) -> dict[str, Any]:
        return dict((self.kube.child(KIND, namespace, name) or {}).get("status") or {})

    def condition(self, name: str, type_: str) -> tuple[str, str, str]:
        cond = conditions.find(self.status(name).get("conditions") or [], type_) or {}
        return cond.get("status", ""), cond.get("reason", ""), cond.get("message", "")

    def pods_ready(self, name: str) -> None:
        """What the Deployment controller does once the pods are up."""
        self.kube.edit("Deployment", NS, name, {"status": READY_PODS})

    def secret(self, name: str) -> dict[str, str]:
        obj = self.kube.child("Secret", NS, f"{name}-platform") or {}
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


@pytest.fixture
def world() -> World:
    return World()


WORKER = {"type": "worker", "messaging": {"consumes": [{"queue": "orders", "exchange": "orders"}]}}
API = {"type": "api", "ingress": {"host": "orders.example.com"}}


# --- create -----------------------------------------------------------------------------------------


async def test_create_applies_the_children_provisions_and_turns_ready_once_the_pods_are(world: World):
    world.add("orders", **API, messaging=WORKER["messaging"])
    first = await world.reconcile("orders")
    assert first is not None and not first.retry and not first.refused
    assert world.kube.kinds(NS) == {"Secret", "Deployment", "Service", "Ingress", "NetworkPolicy"}
    queues = {q["name"] for q in world.status("orders")["queues"]}
    assert "shop.orders" in queues and queues == set(world.rabbit.queues)
    assert set(world.rabbit.users) == {"shop.orders"} and set(world.redis.users) == {"shop.orders"}
    secret = world.secret("orders")
    assert world.rabbit.users["shop.orders"] in secret["RABBITMQ_URL"]
    assert world.redis.users["shop.orders"]["password"] in secret["REDIS_URL"]
    for type_, reason in [
        (conditions.QUEUES_READY, "Provisioned"),
        (conditions.CACHE_READY, "Provisioned"),
        (conditions.INGRESS_READY, "Configured"),
    ]:
        assert world.condition("orders", type_)[:2] == ("True", reason)
    assert world.condition("orders", conditions.DEPLOYMENT_READY)[:2] == ("False", "PodsNotReady")
    assert world.condition("orders", conditions.READY)[:2] == ("False", "PodsNotReady")
    assert "Created" in world.reasons("orders")
    assert "PodsNotReady" not in world.reasons("orders")  # a rollout under way is no Warning

    world.pods_ready("orders")
    await world.reconcile("orders", external=False)  # the Deployment's change, as its watch reports it
    assert world.condition("orders", conditions.READY)[:2] == ("True", "AllReady")
    assert world.status("orders")["replicaSummary"] == "1/1"
    assert world.reasons("orders")[-1] == "Ready"


async def test_a_resync_that_finds_everything_in_place_writes_nothing(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    world.pods_ready("orders")
    await world.reconcile("orders")
    before = len(world.kube.writes())
    again = await world.reconcile("orders")
    assert again is not None and again.written == [] and not again.status_written
    assert len(world.kube.writes()) == before


# --- drift ------------------------------------------------------------------------------------------


async def test_a_child_changed_by_hand_is_applied_again(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    image = world.kube.child("Deployment", NS, "orders")["spec"]["template"]["spec"]["containers"][0]["image"]
    containers = world.kube.child("Deployment", NS, "orders")["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = "evil.example/miner:1"
    world.kube.edit("Deployment", NS, "orders", {"spec": {"template": {"spec": {"containers": containers}}}})

    outcome = await world.reconcile("orders", external=False)
    assert outcome is not None and "Deployment/orders" in outcome.written
    live = world.kube.child("Deployment", NS, "orders")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image
    repaired = [m for obj, _, reason, m in world.events if reason == "Repaired"]
    assert repaired and "Restored Deployment orders: spec.template.spec.containers" in repaired[-1]


async def test_a_child_deleted_by_hand_is_made_again(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    world.kube.remove("Service", NS, "orders")
    outcome = await world.reconcile("orders", external=False)
    assert outcome is not None and outcome.written == ["Service/orders"]
    assert world.kube.child("Service", NS, "orders") is not None


async def test_a_child_no_longer_asked_for_is_deleted(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    world.kube.edit(KIND, NS, "orders", {"spec": {"ingress": None}})
    outcome = await world.reconcile("orders", external=False)
    assert outcome is not None and "delete Ingress/orders" in outcome.written
    assert "Ingress" not in world.kube.kinds(NS)
    assert world.condition("orders", conditions.INGRESS_READY)[:2] == ("True", "NotRequired")


# --- refusal ----------------------------------------------------------------------------------------


async def test_a_child_the_api_server_refuses_says_so_in_deployment_ready(world: World):
    world.kube.refuse["NetworkPolicy"] = 'admission webhook "policy.example" denied the request: no egress'
    world.add("orders", **API)
    outcome = await world.reconcile("orders")
    assert outcome is not None and "NetworkPolicy" in outcome.refused
    status, reason, message = world.condition("orders", conditions.DEPLOYMENT_READY)
    assert (status, reason) == ("False", "ChildRefused") and "denied the request: no egress" in message
    assert {"Secret", "Deployment", "Service", "Ingress"} <= world.kube.kinds(NS)  # the rest still applied
    assert "ChildRefused" in world.reasons("orders")  # a Warning Event for the condition


async def test_a_refused_ingress_says_so_in_ingress_ready(world: World):
    world.kube.refuse["Ingress"] = "spec.rules[0].host: Invalid value"
    world.add("orders", **API)
    await world.reconcile("orders")
    status, reason, message = world.condition("orders", conditions.INGRESS_READY)
    assert (status, reason) == ("False", "IngressRefused") and "Invalid value" in message
    assert world.condition("orders", conditions.DEPLOYMENT_READY)[1] != "ChildRefused"


async def test_a_child_of_the_same_name_made_by_hand_is_not_taken_over(world: World):
    world.kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orders", "namespace": NS}})
    world.add("orders", **API)
    outcome = await world.reconcile("orders")
    assert outcome is not None and "not owned by this PlatformService" in outcome.refused["Service"]
    assert "ownerReferences" not in world.kube.child("Service", NS, "orders")["metadata"]


# --- conflict ---------------------------------------------------------------------------------------


async def test_an_ingress_host_held_by_an_older_service_is_refused_to_the_newer(world: World):
    world.add("first", created="2026-01-01T00:00:00Z", **API)
    world.add("second", created="2026-01-02T00:00:00Z", **API)
    await world.reconcile("first")
    await world.reconcile("second")
    assert world.kube.child("Ingress", NS, "first") is not None
    assert world.kube.child("Ingress", NS, "second") is None
    status, reason, message = world.condition("second", conditions.INGRESS_READY)
    assert (status, reason) == ("False", "HostPathConflict") and "shop/first" in message
    assert world.condition("first", conditions.INGRESS_READY)[:2] == ("True", "Configured")


async def test_a_host_another_namespace_routes_is_refused(world: World):
    world.add("first", created="2026-01-01T00:00:00Z", namespace="other", **API)
    world.add(
        "second", created="2026-01-02T00:00:00Z", **{**API, "ingress": {"host": "orders.example.com", "path": "/x"}}
    )
    await world.reconcile("first", namespace="other")
    await world.reconcile("second")
    assert world.kube.child("Ingress", NS, "second") is None
    assert world.condition("second", conditions.INGRESS_READY)[:2] == ("False", "HostClaimed")


# --- an outside system down -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("door", "its_condition", "other_condition"),
    [
        ("rabbit", conditions.QUEUES_READY, conditions.CACHE_READY),
        ("redis", conditions.CACHE_READY, conditions.QUEUES_READY),
    ],
    ids=["rabbitmq", "redis"],
)
async def test_an_outside_system_down_its_condition_says_so_retries_and_the_rest_is_applied(
    world: World, door: str, its_condition: str, other_condition: str
):
    down = getattr(world, door)
    down.down = True
    world.add("orders", **WORKER)
    outcome = await world.reconcile("orders")
    assert outcome is not None and any(down.system in r for r in outcome.retry)
    assert world.condition("orders", its_condition)[:2] == ("False", f"{down.system}Unavailable")
    assert world.condition("orders", other_condition)[:2] == ("True", "Provisioned")
    assert {"Secret", "Deployment", "NetworkPolicy"} <= world.kube.kinds(NS)

    down.down = False
    retried = await world.reconcile("orders")
    assert retried is not None and not retried.retry
    assert world.condition("orders", its_condition)[:2] == ("True", "Provisioned")


async def test_postgres_down_its_condition_says_so_and_retries(world: World):
    world.postgres.down = True
    world.add("orders", type="data", database={"engine": "postgres", "provision": True})
    outcome = await world.reconcile("orders")
    assert outcome is not None and any("PostgreSQL" in r for r in outcome.retry)
    assert world.condition("orders", conditions.DATABASE_READY)[:2] == ("False", "PostgresUnavailable")
    assert "Deployment" in world.kube.kinds(NS)

    world.postgres.down = False
    await world.reconcile("orders")
    assert world.condition("orders", conditions.DATABASE_READY)[:2] == ("True", "Provisioned")
    assert world.postgres.databases and "DATABASE_URL" in world.secret("orders")


# --- deletion ---------------------------------------------------------------------------------------


async def _delete(world: World, name: str) -> None:
    body = world.kube.child(KIND, NS, name)
    assert body is not None
    await cleanup.cleanup(
        PlatformService.from_body(body),
        body,
        world.backends,
        others_using=lambda _: False,
        held_by_another=lambda _: False,
        emit=world.emit,
    )


async def _provisioned(world: World, **spec: Any) -> tuple[str, str]:
    """A service reconciled with a queue, a Redis key and a database; its queue and key prefix."""
    world.add("orders", **{**WORKER, "type": "data"}, database={"engine": "postgres", "provision": True}, **spec)
    await world.reconcile("orders")
    status = world.status("orders")
    prefix = status["redis"]["keyPrefix"]
    world.redis.keys[f"{prefix}:session"] = "x"
    return status["queues"][0]["name"], prefix


async def test_deletion_under_retain_keeps_the_data_and_removes_the_users(world: World):
    queue, prefix = await _provisioned(world)  # Retain is the default
    await _delete(world, "orders")
    assert queue in world.rabbit.queues and f"{prefix}:session" in world.redis.keys
    assert not world.rabbit.users and not world.redis.users
    db = next(iter(world.postgres.databases.values()))
    assert db["login"] is False  # kept, may no longer log in
    assert world.reasons("orders")[-1] == "Retained"


async def test_deletion_under_delete_removes_queues_users_keys_and_database(world: World):
    queue, prefix = await _provisioned(world, deletionPolicy="Delete")
    await _delete(world, "orders")
    assert queue not in world.rabbit.queues and not world.rabbit.users
    assert not world.redis.users and not any(k.startswith(f"{prefix}:") for k in world.redis.keys)
    assert not world.postgres.databases
    assert {"QueuesDeleted", "CacheDeleted", "DatabaseDeleted"} <= set(world.reasons("orders"))


async def test_deletion_under_delete_keeps_a_queue_holding_messages(world: World):
    queue, _ = await _provisioned(world, deletionPolicy="Delete")
    world.rabbit.queues[queue] = 5
    await _delete(world, "orders")
    assert world.rabbit.queues.get(queue) == 5
    kept = [m for _, type_, reason, m in world.events if reason == "QueuesKept" and type_ == "Warning"]
    assert kept and "5 messages" in kept[0] and "deleteQueuesWithMessages" in kept[0]


async def test_deletion_with_delete_queues_with_messages_drops_a_full_queue(world: World):
    spec = {**WORKER["messaging"], "deleteQueuesWithMessages": True}
    world.add("orders", type="worker", messaging=spec, deletionPolicy="Delete")
    await world.reconcile("orders")
    queue = world.status("orders")["queues"][0]["name"]
    world.rabbit.queues[queue] = 5
    await _delete(world, "orders")
    assert queue not in world.rabbit.queues


async def test_deletion_waits_while_rabbitmq_is_down(world: World):
    queue, _ = await _provisioned(world, deletionPolicy="Delete")
    world.rabbit.down = True
    with pytest.raises(cleanup.CleanupBlocked, match="RabbitMQ is unreachable"):
        await _delete(world, "orders")
    assert queue in world.rabbit.queues
    assert "CleanupBlocked" in world.reasons("orders")


# --- our own echo -----------------------------------------------------------------------------------


def _child_handler(plural: str) -> Any:
    """The handler handlers.py registers for a kind of child (from its CHILDREN table), taken as it
    goes to kopf.on.event rather than read back out of kopf's registry (whose handler lists are private)."""
    registered: list[Any] = []

    def on_event(*_: Any, **__: Any) -> Any:
        return registered.append

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kopf.on, "event", on_event)
        handlers._child_handler(*next(child for child in handlers.CHILDREN if child[2] == plural))
    (handler,) = registered
    return handler


async def _child_event(world: World, kind: str, plural: str, name: str) -> None:
    live = world.kube.child(kind, NS, name)
    assert live is not None
    memo = kopf.Memo(kube=world.kube, backends=world.backends, state=world.state, seen=handlers.Seen())
    await _child_handler(plural)(
        namespace=NS, meta=live["metadata"], type="MODIFIED", event={"object": live}, memo=memo
    )


@pytest.fixture
def events_to_world(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handlers post Events through kopf, which needs its running operator: here they go to the world."""
    monkeypatch.setattr(handlers, "_post_event", world.emit)


@pytest.mark.usefixtures("events_to_world")
async def test_the_echo_of_our_own_write_does_nothing(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    assert world.state.is_own_echo("Deployment", world.kube.child("Deployment", NS, "orders")["metadata"])
    calls = len(world.kube.calls)
    await _child_event(world, "Deployment", "deployments", "orders")
    assert len(world.kube.calls) == calls  # not even a read


@pytest.mark.usefixtures("events_to_world")
async def test_a_child_event_that_is_not_our_echo_reconciles_the_owner(world: World):
    world.add("orders", **API)
    await world.reconcile("orders")
    world.kube.edit("Deployment", NS, "orders", {"spec": {"replicas": 7}})
    await _child_event(world, "Deployment", "deployments", "orders")
    assert world.kube.child("Deployment", NS, "orders")["spec"]["replicas"] == 1
    assert world.state.is_own_echo("Deployment", world.kube.child("Deployment", NS, "orders")["metadata"])


# --- two triggers at once ---------------------------------------------------------------------------


async def test_two_triggers_at_once_run_one_after_the_other(world: World):
    world.add("orders", **API, messaging=WORKER["messaging"])
    index = await world.indexes()

    def run(name: str) -> asyncio.Task[Outcome | None]:
        call = reconcile.reconcile(
            NS, "orders", world.kube, world.backends, world.state,  # type: ignore[arg-type]
            claims=lambda key: list(index.get(key, [])), emit=world.emit,
        )  # fmt: skip
        return asyncio.create_task(call, name=name)

    first, second = await asyncio.gather(run("first"), run("second"))
    tasks = [task for task, *_ in world.kube.calls]
    # Each one's calls in one block: the second read nothing before the first was done.
    blocks = [task for i, task in enumerate(tasks) if i == 0 or tasks[i - 1] != task]
    assert sorted(blocks) == ["first", "second"]
    # The one that ran second found everything in place: every child applied once.
    later = second if tasks[0] == "first" else first
    assert later is not None and later.written == []
    applied = [args[:3] for args in world.kube.called("apply") + world.kube.called("create")]
    assert len(applied) == len(set(applied))
    assert len(world.rabbit.called("provision")) == 2 and not world.state.waiting
