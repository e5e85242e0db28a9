"""The User and its rules, free of any framework: what a valid user is, and what may change."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from platform_contract.domain import InvalidField, one_line_name

EMAIL_MAX_LENGTH = 320  # RFC 5321: 64 for the local part, 255 for the domain, and the @
NAME_MAX_LENGTH = 200
TELEGRAM_ID_MAX = 2**63 - 1  # stored as a PostgreSQL bigint; Telegram's user ids are positive

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces. Whether the
# address really exists is for a confirmation mail to find out, not for a regular expression.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_email(email: str) -> str:
    """Emails are compared without regard to case (nobody expects Ann@X.org and ann@x.org to be two
    people), so they are stored lowercased and looked up the same way."""
    return email.strip().lower()


def valid_email(email: str) -> str:
    email = normalize_email(email)
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidField("email", f"longer than {EMAIL_MAX_LENGTH} characters")
    if not _EMAIL.fullmatch(email):
        raise InvalidField("email", f"{email!r} is not an email address")
    return email


valid_name = partial(one_line_name, max_length=NAME_MAX_LENGTH)


def valid_telegram_id(telegram_id: int) -> int:
    if not 0 < telegram_id <= TELEGRAM_ID_MAX:
        raise InvalidField("telegram_id", f"must be from 1 to {TELEGRAM_ID_MAX}")
    return telegram_id


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str | None  # None for a user known only by the Telegram account it was made for
    name: str
    created_at: datetime
    telegram_id: int | None = None

    @classmethod
    def register(cls, email: str, name: str, *, now: datetime | None = None) -> User:
        # The id is made here, not by the database, so a user is whole before it is stored.
        return cls(
            id=uuid.uuid4(),
            email=valid_email(email),
            name=valid_name(name),
            created_at=now or datetime.now(UTC),
        )

    @classmethod
    def from_telegram(cls, telegram_id: int, name: str, *, now: datetime | None = None) -> User:
        """A user for a Telegram account, which tells its name but no email."""
        return cls(
            id=uuid.uuid4(),
            email=None,
            name=valid_name(name),
            created_at=now or datetime.now(UTC),
            telegram_id=valid_telegram_id(telegram_id),
        )

    def changed(self, *, email: str | None = None, name: str | None = None) -> User:
        """This user with a new email and/or name; id, created_at and telegram_id never change."""
        changes: dict[str, str] = {}
        if email is not None:
            changes["email"] = valid_email(email)
        if name is not None:
            changes["name"] = valid_name(name)
        return dataclasses.replace(self, **changes)
