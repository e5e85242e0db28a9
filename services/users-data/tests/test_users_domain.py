"""The User's rules, without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from platform_contract.domain import InvalidField
from users_data.domain.model import NAME_MAX_LENGTH, TELEGRAM_ID_MAX, User, normalize_email

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_register_normalizes_email_and_name() -> None:
    user = User.register("  Ann.Lee@Example.ORG ", "  Ann   Lee ", now=NOW)

    assert user.email == "ann.lee@example.org"
    assert user.name == "Ann Lee"
    assert user.created_at == NOW
    assert user.id.version == 4


def test_register_gives_each_user_its_own_id() -> None:
    assert User.register("a@example.org", "A").id != User.register("a@example.org", "A").id


def test_created_at_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    user = User.register("a@example.org", "A")
    assert before <= user.created_at <= datetime.now(UTC)
    assert user.created_at.tzinfo is not None


@pytest.mark.parametrize(
    "email",
    ["", "ann", "ann@", "@example.org", "ann@example", "ann lee@example.org", "a@b@example.org", "x" * 315 + "@ex.org"],
)
def test_invalid_email_is_refused_naming_the_field(email: str) -> None:
    with pytest.raises(InvalidField) as info:
        User.register(email, "Ann")
    assert info.value.field == "email"


@pytest.mark.parametrize("name", ["", "   ", "x" * (NAME_MAX_LENGTH + 1)])
def test_invalid_name_is_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidField) as info:
        User.register("ann@example.org", name)
    assert info.value.field == "name"
    assert str(info.value).startswith("name: ")


def test_changed_keeps_identity_and_creation_time() -> None:
    user = User.register("ann@example.org", "Ann", now=NOW)

    changed = user.changed(email="ANN@new.example.org", name="Ann B.")

    assert (changed.id, changed.created_at) == (user.id, user.created_at)
    assert (changed.email, changed.name) == ("ann@new.example.org", "Ann B.")
    assert (user.email, user.name) == ("ann@example.org", "Ann")  # the original is untouched


def test_changed_with_only_a_name_keeps_the_email() -> None:
    user = User.register("ann@example.org", "Ann", now=NOW)
    assert user.changed(name="Annie") == dataclasses.replace(user, name="Annie")
    assert user.changed() == user


def test_changed_validates_like_register() -> None:
    user = User.register("ann@example.org", "Ann", now=NOW)
    with pytest.raises(InvalidField, match="email"):
        user.changed(email="not-an-address")
    with pytest.raises(InvalidField, match="name"):
        user.changed(name=" ")


def test_users_are_immutable_values() -> None:
    user = User.register("ann@example.org", "Ann", now=NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.name = "Bob"  # type: ignore[misc]


def test_lookups_normalize_like_storage() -> None:
    assert normalize_email(" ANN@Example.org ") == User.register("ann@example.org", "Ann").email


def test_a_telegram_user_has_its_telegram_id_and_no_email() -> None:
    user = User.from_telegram(123456789, "  Ann   Lee ", now=NOW)

    assert (user.telegram_id, user.email, user.name, user.created_at) == (123456789, None, "Ann Lee", NOW)
    assert user.changed(name="Ann").telegram_id == 123456789


@pytest.mark.parametrize("telegram_id", [0, -1, TELEGRAM_ID_MAX + 1])
def test_a_telegram_id_out_of_range_is_refused(telegram_id: int) -> None:
    with pytest.raises(InvalidField) as error:
        User.from_telegram(telegram_id, "Ann")
    assert error.value.field == "telegram_id"
