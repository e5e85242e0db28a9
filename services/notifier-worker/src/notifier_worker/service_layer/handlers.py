"""The use case: one notification per OrderCreated message, however often it is delivered.

At-least-once delivery from RabbitMQ plus a processed marker in Redis gives effectively-once
notifications. The marker is claimed before sending (SET NX with a short lease) and turned into
"done" (with the idempotency TTL) after, so two copies of one message handled at the same time
(two replicas, or a redelivery racing the original) cannot both send. A worker that dies after
claiming leaves a claim that expires after the lease, and the redelivered message is sent then.
The one window left is a crash between sending and marking done: the message is redelivered
and sent again; that is the price of never losing a notification.
"""

from __future__ import annotations

import asyncio
import enum
import logging

from notifier_worker.domain.model import OrderCreated, notification_for
from notifier_worker.service_layer.ports import Notifier, ProcessedMessages

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # handled before: acknowledge, send nothing
    IN_PROGRESS = "in_progress"  # another delivery of it is being handled: look again later


async def notify_order_created(
    event: OrderCreated,
    message_key: str,
    *,
    notifier: Notifier,
    processed: ProcessedMessages,
    ttl_seconds: int,
    lease_seconds: int,
    timeout_seconds: float,
) -> Outcome:
    token = await processed.claim(message_key, lease_seconds)
    if token is None:
        return Outcome.DUPLICATE if await processed.is_done(message_key) else Outcome.IN_PROGRESS
    try:
        async with asyncio.timeout(timeout_seconds):
            await notifier.send(notification_for(event))
    except BaseException:
        # Also on cancellation (shutdown past its grace period): the redelivered message must
        # find the claim gone, or it would wait out the lease.
        try:
            await asyncio.shield(processed.release(message_key, token))
        except Exception:
            # The failure that matters is the one being raised; the claim expires with its lease.
            log.warning("could not release the claim on %s", message_key, exc_info=True)
        raise
    await processed.complete(message_key, ttl_seconds)
    return Outcome.SENT
