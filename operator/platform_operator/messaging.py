"""The RabbitMQ topology a PlatformService asks for, as plain values. Pure: no client, no I/O.

For each consumed queue Q:

    exchange ──(routing keys)──▶ Q ──(reject / TTL / overflow)──▶ Q.dlx ──▶ Q.dlq     (deadLetter)
                                 ▲
    consumer ──(failed, retry n < maxRetries)──▶ Q.retry ──▶ Q.retry queue ──(after retryDelaySeconds)──┘

The delay is the retry queue's message TTL; when it expires RabbitMQ dead-letters the message
back to Q through the default exchange. The consumer counts retries in the `x-retry-count` header
and, past `maxRetries`, rejects the message, which sends it to the dead-letter queue.

What never changes is set as a queue argument at declaration, where it costs nothing: Q always
dead-letters to Q.dlx (with `deadLetter: false` that exchange simply does not exist, and RabbitMQ
drops what it would have routed), and a retry queue always dead-letters to Q. What may change on a
live queue (message TTL, max length) lives in a policy, only where the spec sets it: RabbitMQ
matches every policy against every queue of the vhost on each policy change, so a policy per queue
made provisioning quadratic. The retry delay is a TTL too, and every retrying queue has one; so it
is an argument of a retry queue whose name carries the delay (`Q.retry.10s`): a new delay is a new
retry queue, bound to the retry exchange before the old one is unbound, and the old one (whose
messages still come back to Q) is deleted once empty.

Queues declared before arguments were used have none, and RabbitMQ never adds arguments to a live
queue: such a queue keeps its dead-lettering in a policy (`legacy_policy`), so nothing it routes is lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from platform_operator.model import Consume, PlatformService

POLICY_PRIORITY = 100
POLICY_PREFIX = "platform/"
RETRY_HEADER = "x-retry-count"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str
    # The spec named this type (a publishes entry): a live exchange of another type is reported.
    # An exchange a consumer only binds to is declared as topic if missing, and any type will do.
    typed: bool = True


@dataclass(frozen=True)
class Queue:
    name: str
    # Set at declaration, never changed: (key, value) pairs, e.g. x-dead-letter-exchange.
    arguments: tuple[tuple[str, object], ...] = ()

    @property
    def args(self) -> dict[str, object]:
        return dict(self.arguments)


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Policy:
    name: str
    queue: str
    definition: dict[str, object]

    @property
    def pattern(self) -> str:
        return f"^{re.escape(self.queue)}$"


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class Topology:
    """Everything one service needs on the broker. Every name is the broker's: `<namespace>.<name>`."""

    user: str
    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()
    policies: tuple[Policy, ...] = ()
    permissions: Permissions = field(default_factory=lambda: Permissions("^$", "^$", "^$"))
    consumed: tuple[str, ...] = ()  # the main queues, reported in status
    # Exchanges of other namespaces this service binds to (their owners shared them): never
    # declared or deleted by this service, only bound to once they exist.
    foreign_exchanges: tuple[str, ...] = ()

    @property
    def queues_in_status(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues)

    @property
    def empty(self) -> bool:
        return not (self.exchanges or self.queues)


def broker_name(namespace: str, name: str) -> str:
    """The name on the broker of a queue or exchange a spec names: under its namespace.

    A namespace name has no dot, so the part before the first dot always tells whose a name is:
    no spec in one namespace can name, and so be granted, what another namespace holds."""
    return f"{namespace}.{name}"


def owner_namespace(name: str) -> str:
    """The namespace a broker name belongs to (the inverse of broker_name)."""
    return name.split(".", 1)[0]


def user_name(svc: PlatformService) -> str:
    return f"{svc.namespace}.{svc.name}"


def retry_name(queue: str) -> str:
    """The retry exchange of a queue (consumers publish failed messages to it)."""
    return f"{queue}.retry"


def retry_queue_name(queue: str, delay_seconds: int) -> str:
    """The retry queue of a queue for one delay: the delay is its TTL argument, fixed for its life."""
    return f"{queue}.retry.{delay_seconds}s"


_RETRY_QUEUE = re.compile(r"^(?P<queue>.+)\.retry(\.\d+s)?$")


def retried_queue(name: str) -> str | None:
    """The queue a retry queue sends back to (`Q` for `Q.retry.10s`, and for the older `Q.retry`)."""
    m = _RETRY_QUEUE.match(name)
    return m.group("queue") if m else None


# Queue arguments and the policy keys that say the same thing, for queues declared without arguments.
_POLICY_KEYS = {
    "x-dead-letter-exchange": "dead-letter-exchange",
    "x-dead-letter-routing-key": "dead-letter-routing-key",
    "x-message-ttl": "message-ttl",
}


def legacy_policy(queue: Queue) -> dict[str, object]:
    """What a queue that exists without arguments needs in its policy to behave as declared."""
    return {_POLICY_KEYS[k]: v for k, v in queue.arguments if k in _POLICY_KEYS}


def dlx_name(queue: str) -> str:
    return f"{queue}.dlx"


def dlq_name(queue: str) -> str:
    return f"{queue}.dlq"


def exchange_of(svc: PlatformService, consume: Consume) -> str:
    """The broker name of the exchange a consumes entry binds to: in the service's own namespace
    unless the entry names another (`exchangeNamespace`), whose owner must have shared it."""
    return broker_name(consume.exchange_namespace or svc.namespace, consume.exchange)


def is_foreign(svc: PlatformService, consume: Consume) -> bool:
    return bool(consume.exchange_namespace) and consume.exchange_namespace != svc.namespace


def _alternation(names: list[str]) -> str:
    unique = sorted(set(names))
    if not unique:
        return "^$"
    return "^(" + "|".join(re.escape(n) for n in unique) + ")$"


def plan(svc: PlatformService, *, unshared: frozenset[str] = frozenset()) -> Topology:
    """The exchanges, queues, bindings, policies and permissions of one service.

    `unshared` holds the broker names of other namespaces' exchanges whose owners have not shared
    them with this namespace: the queues that would bind to them are declared, and not bound.

    The service's user may write (publish) to the exchanges it publishes to and to its own retry
    exchanges, and read (consume) its own queues. It may configure nothing: the operator declares
    everything, so the service can neither delete nor redeclare a queue or an exchange.
    """
    ns = svc.namespace
    msg = svc.spec.messaging
    exchanges: dict[str, Exchange] = {}
    for e in msg.publishes:
        exchanges[broker_name(ns, e.name)] = Exchange(broker_name(ns, e.name), e.type)
    queues: list[Queue] = []
    bindings: list[Binding] = []
    policies: list[Policy] = []
    foreign: list[str] = []
    writable: list[str] = list(exchanges)
    readable: list[str] = []

    for c in msg.consumes:
        queue = broker_name(ns, c.queue)
        source = exchange_of(svc, c)
        if is_foreign(svc, c):
            if source not in unshared:
                foreign.append(source)
        else:
            # Another service of the namespace may publish to it; declared as topic if nobody has yet.
            exchanges.setdefault(source, Exchange(source, "topic", typed=False))
        queues.append(Queue(queue, (("x-dead-letter-exchange", dlx_name(queue)),)))
        readable.append(queue)
        if source not in unshared:
            bindings.extend(Binding(source, queue, key) for key in c.routing_keys)

        if c.dead_letter:
            dlx, dlq = dlx_name(queue), dlq_name(queue)
            exchanges[dlx] = Exchange(dlx, "fanout")
            queues.append(Queue(dlq))
            bindings.append(Binding(dlx, dlq, ""))
            readable.append(dlq)
        settings: dict[str, object] = {}
        if c.message_ttl_seconds is not None:
            settings["message-ttl"] = c.message_ttl_seconds * 1000
        if c.max_length is not None:
            settings["max-length"] = c.max_length
        if settings:
            policies.append(Policy(policy_name(svc, queue), queue, settings))

        if c.max_retries > 0:
            retry = retry_name(queue)
            retry_queue = retry_queue_name(queue, c.retry_delay_seconds)
            exchanges[retry] = Exchange(retry, "fanout")
            queues.append(
                Queue(
                    retry_queue,
                    (
                        ("x-dead-letter-exchange", ""),
                        ("x-dead-letter-routing-key", queue),
                        ("x-message-ttl", c.retry_delay_seconds * 1000),
                    ),
                )
            )
            bindings.append(Binding(retry, retry_queue, ""))
            writable.append(retry)

    return Topology(
        user=user_name(svc),
        exchanges=tuple(exchanges.values()),
        queues=tuple(queues),
        bindings=tuple(bindings),
        policies=tuple(policies),
        permissions=Permissions(configure="^$", write=_alternation(writable), read=_alternation(readable)),
        consumed=tuple(broker_name(ns, c.queue) for c in msg.consumes),
        foreign_exchanges=tuple(sorted(set(foreign))),
    )


def policy_name(svc: PlatformService, queue: str) -> str:
    # Slashes, which no namespace, service or queue name holds, keep one service's policies apart
    # from those of a service whose name merely starts with its name (orders, orders.v2).
    return f"{POLICY_PREFIX}{svc.namespace}/{svc.name}/{queue}"


def policy_prefix(user: str) -> str:
    """Policies of one service share the prefix platform/<namespace>/<name>/ (its user is namespace.name)."""
    namespace, name = user.split(".", 1)
    return f"{POLICY_PREFIX}{namespace}/{name}/"


def consumer_settings(svc: PlatformService) -> str:
    """What a consumer needs to follow the retry path, as JSON for RABBITMQ_CONSUMES."""
    out = []
    for c in svc.spec.messaging.consumes:
        queue = broker_name(svc.namespace, c.queue)
        out.append(
            {
                "queue": queue,
                "prefetch": c.prefetch,
                "maxRetries": c.max_retries,
                "retryExchange": retry_name(queue) if c.max_retries > 0 else "",
                "deadLetterQueue": dlq_name(queue) if c.dead_letter else "",
                "retryHeader": RETRY_HEADER,
            }
        )
    return json.dumps(out, separators=(",", ":"))


def publishes_setting(svc: PlatformService) -> str:
    """RABBITMQ_PUBLISHES: the broker names of the exchanges the service publishes to, in spec order."""
    return ",".join(broker_name(svc.namespace, e.name) for e in svc.spec.messaging.publishes)


def amqp_url(user: str, password: str, host: str, port: int, vhost: str) -> str:
    from urllib.parse import quote

    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(vhost, safe='')}"
