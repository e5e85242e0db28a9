"""The errors of a data service's domain, free of any framework (no extra needed): every data
service refuses a bad field, a missing record and a taken unique key alike, and
platform_contract.data_service answers them alike (422, 404 and 409)."""

from __future__ import annotations

import uuid


class InvalidField(ValueError):
    """A record that breaks a rule about one of its fields."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class RecordNotFound(LookupError):
    def __init__(self, noun: str, record_id: uuid.UUID) -> None:
        super().__init__(f"no {noun} with id {record_id}")  # "no user with id ..."
        self.record_id = record_id


class KeyTaken(Exception):
    """Another record has this value of a unique key."""

    def __init__(self, a_record: str, key: str, value: str) -> None:
        super().__init__(f"{a_record} with {key} {value} already exists")  # "a user with email ann@x.org ..."
        self.key = key
        self.value = value


def one_line_name(name: str, *, max_length: int) -> str:
    """A display name on one line: runs of white space folded to one space; InvalidField (about
    `name`) when that leaves it empty or longer than `max_length`."""
    name = " ".join(name.split())
    if not name:
        raise InvalidField("name", "must not be empty")
    if len(name) > max_length:
        raise InvalidField("name", f"longer than {max_length} characters")
    return name
