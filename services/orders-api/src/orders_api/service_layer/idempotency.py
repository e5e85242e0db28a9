"""The pure part of idempotent POST /orders: what is stored under an Idempotency-Key and what a
repeated key means. No I/O here; the Redis adapter stores these records as JSON.

A key goes through two states. `Pending` is claimed with SET NX and a short lock TTL, so that a
process that dies mid-request frees the key soon; `Completed` replaces it (only if the claim is
still ours) and keeps the response to replay for IDEMPOTENCY_TTL_SECONDS.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel

# Printable ASCII without spaces, as clients send UUIDs or similar tokens; bounded so that the
# Redis key stays small.
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


class InvalidIdempotencyKey(ValueError):
    pass


class IdempotencyKeyInUse(Exception):
    """Another request with the same key is still being processed."""


class IdempotencyKeyReused(Exception):
    """The key was used before with a different request body."""


@dataclass(frozen=True)
class Pending:
    fingerprint: str
    # Tells our own claim from a later one by another request after the lock expired.
    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True)
class Completed:
    fingerprint: str
    status_code: int
    body: dict[str, Any]


Record = Pending | Completed


def validate_key(key: str | None) -> str:
    if key is None:
        raise InvalidIdempotencyKey("the Idempotency-Key header is required (e.g. a UUID, unique per order)")
    if not KEY_PATTERN.match(key):
        raise InvalidIdempotencyKey("the Idempotency-Key header must be 1 to 255 printable ASCII characters")
    return key


def fingerprint(request: BaseModel) -> str:
    """The same request, field for field, gives the same fingerprint whatever its JSON spelling."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(existing: Record, request_fingerprint: str) -> Completed:
    """What a repeated key gives: the stored response, or why there is none to give."""
    if existing.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body; use a new key for a new order"
        )
    if isinstance(existing, Pending):
        raise IdempotencyKeyInUse("a request with this Idempotency-Key is still being processed; retry shortly")
    return existing


def encode(record: Record) -> str:
    kind = "pending" if isinstance(record, Pending) else "completed"
    return json.dumps({"state": kind, **asdict(record)}, sort_keys=True, separators=(",", ":"))


def decode(raw: str) -> Record:
    data = json.loads(raw)
    state = data.pop("state")
    if state == "pending":
        return Pending(**data)
    if state == "completed":
        return Completed(**data)
    raise ValueError(f"unknown idempotency record state {state!r}")
