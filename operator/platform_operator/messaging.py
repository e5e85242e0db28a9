"""The RabbitMQ topology a PlatformService asks for, as plain values. Pure: no client, no I/O.

For each consumed queue Q:

    exchange ──(routing keys)──▶ Q ──(reject / TTL / overflow)──▶ Q.dlx ──▶ Q.dlq     (deadLetter)
                                 ▲
    consumer ──(failed, retry n < maxRetries)──▶ Q.retry ──▶ Q.retry queue ──(after retryDelaySeconds)──┘

The delay lives in the retry queue's message TTL; when it expires RabbitMQ dead-letters the message
back to Q through the default exchange. The consumer counts retries in the `x-retry-count` header
and, past `maxRetries`, rejects the message, which sends it to the dead-letter queue.

What RabbitMQ lets change later (message TTL, max length, dead-letter exchange, the retry delay)
lives in policies, not in queue arguments, which RabbitMQ never changes once a queue exists: so
`maxLength` can change on a live queue. Queues are declared with no arguments at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from platform_operator.model import PlatformService

POLICY_PRIORITY = 100
RETRY_HEADER = "x-retry-count"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str


@dataclass(frozen=True)
class Queue:
    name: str


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
    """Everything one service needs on the broker."""

    user: str
    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()
    policies: tuple[Policy, ...] = ()
    permissions: Permissions = field(default_factory=lambda: Permissions("^$", "^$", "^$"))
    consumed: tuple[str, ...] = ()  # the main queues, reported in status

    @property
    def queues_in_status(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues)

    @property
    def empty(self) -> bool:
        return not (self.exchanges or self.queues)


def user_name(svc: PlatformService) -> str:
    return f"{svc.namespace}.{svc.name}"


def retry_name(queue: str) -> str:
    return f"{queue}.retry"


def dlx_name(queue: str) -> str:
    return f"{queue}.dlx"


def dlq_name(queue: str) -> str:
    return f"{queue}.dlq"


def _alternation(names: list[str]) -> str:
    unique = sorted(set(names))
    if not unique:
        return "^$"
    return "^(" + "|".join(re.escape(n) for n in unique) + ")$"


def plan(svc: PlatformService) -> Topology:
    """The exchanges, queues, bindings, policies and permissions of one service."""
    msg = svc.spec.messaging
    exchanges: dict[str, Exchange] = {e.name: Exchange(e.name, e.type) for e in msg.publishes}
    queues: list[Queue] = []
    bindings: list[Binding] = []
    policies: list[Policy] = []
    own_queues: list[str] = []
    own_exchanges: list[str] = list(exchanges)
    writable: list[str] = list(exchanges)
    readable: list[str] = []

    for c in msg.consumes:
        # The consumed exchange may be another service's; declared as topic if nobody has yet.
        exchanges.setdefault(c.exchange, Exchange(c.exchange, "topic"))
        queues.append(Queue(c.queue))
        own_queues.append(c.queue)
        readable.append(c.queue)
        bindings.extend(Binding(c.exchange, c.queue, key) for key in c.routing_keys)

        main_policy: dict[str, object] = {}
        if c.dead_letter:
            dlx, dlq = dlx_name(c.queue), dlq_name(c.queue)
            exchanges[dlx] = Exchange(dlx, "fanout")
            queues.append(Queue(dlq))
            bindings.append(Binding(dlx, dlq, ""))
            main_policy["dead-letter-exchange"] = dlx
            own_exchanges.append(dlx)
            own_queues.append(dlq)
            readable.append(dlq)
            writable.append(dlx)
        if c.message_ttl_seconds is not None:
            main_policy["message-ttl"] = c.message_ttl_seconds * 1000
        if c.max_length is not None:
            main_policy["max-length"] = c.max_length
        if main_policy:
            policies.append(Policy(policy_name(svc, c.queue), c.queue, main_policy))

        if c.max_retries > 0:
            retry = retry_name(c.queue)
            exchanges[retry] = Exchange(retry, "fanout")
            queues.append(Queue(retry))
            bindings.append(Binding(retry, retry, ""))
            policies.append(
                Policy(
                    policy_name(svc, retry),
                    retry,
                    {
                        "message-ttl": c.retry_delay_seconds * 1000,
                        "dead-letter-exchange": "",
                        "dead-letter-routing-key": c.queue,
                    },
                )
            )
            own_exchanges.append(retry)
            own_queues.append(retry)
            writable.append(retry)

    return Topology(
        user=user_name(svc),
        exchanges=tuple(exchanges.values()),
        queues=tuple(queues),
        bindings=tuple(bindings),
        policies=tuple(policies),
        permissions=Permissions(
            configure=_alternation(own_queues + own_exchanges),
            write=_alternation(writable),
            read=_alternation(readable),
        ),
        consumed=tuple(c.queue for c in msg.consumes),
    )


def policy_name(svc: PlatformService, queue: str) -> str:
    return f"platform.{svc.namespace}.{svc.name}.{queue}"


def consumer_settings(svc: PlatformService) -> str:
    """What a consumer needs to follow the retry path, as JSON for RABBITMQ_CONSUMES."""
    out = []
    for c in svc.spec.messaging.consumes:
        out.append(
            {
                "queue": c.queue,
                "prefetch": c.prefetch,
                "maxRetries": c.max_retries,
                "retryExchange": retry_name(c.queue) if c.max_retries > 0 else "",
                "deadLetterQueue": dlq_name(c.queue) if c.dead_letter else "",
                "retryHeader": RETRY_HEADER,
            }
        )
    return json.dumps(out, separators=(",", ":"))


def amqp_url(user: str, password: str, host: str, port: int, vhost: str) -> str:
    from urllib.parse import quote

    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(vhost, safe='')}"
