"""The outbound ports the use case needs; adapters/ implements them (tests may stand in for them)."""

from __future__ import annotations

from typing import Protocol

from notifier_worker.domain.model import Notification


class Notifier(Protocol):
    async def send(self, notification: Notification) -> None:
        """Delivers the notification; raises when it could not (the message is then retried)."""


class ProcessedMessages(Protocol):
    """Which messages were handled already: the idempotency record, shared by all replicas."""

    async def claim(self, message_key: str, lease_seconds: int) -> str | None:
        """Claims the message for handling; a token, or None when it is done or claimed elsewhere."""

    async def is_done(self, message_key: str) -> bool: ...

    async def complete(self, message_key: str, ttl_seconds: int) -> None:
        """Marks the message handled, remembered for ttl_seconds."""

    async def release(self, message_key: str, token: str) -> None:
        """Gives a claim up after a failure, so the retried copy can claim it again."""
