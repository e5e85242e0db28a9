"""Passwords of a service's broker, Redis and database users: generated once, kept, rotated on request.

Pure apart from the random generator. The live credentials Secret is the only store: passwords
are read back from its URLs, so they survive resyncs and operator restarts. Setting the annotation
`platform.dev/rotate-credentials` to a new value (any token, e.g. a date) generates new ones; the
Secret remembers the token it was rotated for, and the Deployment rolls because the Secret changed.

Two replicas may both find the Secret missing (a peering hand-over) and each generate passwords.
So new passwords (`unsettled`) are written to the Secret on their own first, with a precondition
(create only if absent, replace only the version read); the replica that loses reads the Secret
again and takes what it holds. RabbitMQ and Redis are then given what the Secret ended up with.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

ROTATE_ANNOTATION = "platform.dev/rotate-credentials"
ROTATED_FOR_ANNOTATION = "platform.dev/rotated-for"


@dataclass(frozen=True)
class Credentials:
    rabbitmq_password: str
    redis_password: str
    rotation: str  # the rotation token these passwords were generated for ("" before any rotation)
    database_password: str = ""  # only where the operator provisions the service's database


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _password_in(url_b64: str | None) -> str | None:
    if not url_b64:
        return None
    try:
        password = urlsplit(base64.b64decode(url_b64).decode()).password
    except ValueError:  # bad base64, not UTF-8, or a URL urlsplit refuses: as if missing
        return None
    return unquote(password) if password else None


def resolve(
    psvc_annotations: Mapping[str, str], live_secret: Mapping[str, Any] | None, *, database: bool = False
) -> Credentials:
    """The passwords to use now: those in the live Secret, unless missing or a rotation is asked.
    A database password only for a service the operator provisions a database for."""
    wanted_rotation = psvc_annotations.get(ROTATE_ANNOTATION, "")
    data = (live_secret or {}).get("data") or {}
    done_rotation = ((live_secret or {}).get("metadata", {}).get("annotations") or {}).get(ROTATED_FOR_ANNOTATION, "")
    # Removing the annotation asks for nothing: only a new, different token rotates.
    rotate = bool(wanted_rotation) and wanted_rotation != done_rotation
    rabbit = None if rotate else _password_in(data.get("RABBITMQ_URL"))
    redis = None if rotate else _password_in(data.get("REDIS_URL"))
    db = None if rotate else _password_in(data.get("DATABASE_URL"))
    return Credentials(
        rabbitmq_password=rabbit or new_password(),
        redis_password=redis or new_password(),
        rotation=wanted_rotation or done_rotation,
        database_password=(db or new_password()) if database else "",
    )


def unsettled(wanted_secret: Mapping[str, Any], live_secret: Mapping[str, Any] | None) -> bool:
    """Whether the Secret we want carries a password the live one does not hold: generated here,
    so it must win a precondition before anyone is given it."""
    wanted = wanted_secret.get("data") or {}
    live = (live_secret or {}).get("data") or {}
    for key in ("RABBITMQ_URL", "REDIS_URL", "DATABASE_URL"):
        password = _password_in(wanted.get(key))
        if password is not None and password != _password_in(live.get(key)):
            return True
    return False
