"""`as_applied`: the fields a POST created, handed to the field manager's apply entry, so that the
server-side applies that follow own them as if they had made the object."""

from __future__ import annotations

from typing import Any

from platform_operator.kube import FIELD_MANAGER, as_applied

FIELDS = {"f:data": {".": {}, "f:A": {}}, "f:type": {}}


def created(*entries: dict[str, Any], version: str = "42") -> dict[str, Any]:
    return {"metadata": {"name": "s", "resourceVersion": version, "managedFields": list(entries)}}


def entry(manager: str, operation: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": "2026-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields or FIELDS,
    }


def test_our_update_entry_becomes_an_apply_entry_against_the_created_version():
    patch = as_applied(created(entry(FIELD_MANAGER, "Update")))
    assert patch == {
        "metadata": {
            "resourceVersion": "42",
            "managedFields": [
                {
                    "manager": FIELD_MANAGER,
                    "operation": "Apply",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": FIELDS,
                }
            ],
        }
    }


def test_other_managers_entries_are_kept_as_they_are():
    theirs = entry("kube-controller-manager", "Update", {"f:metadata": {"f:labels": {"f:x": {}}}})
    patch = as_applied(created(theirs, entry(FIELD_MANAGER, "Update")))
    assert patch is not None
    entries = patch["metadata"]["managedFields"]
    assert entries[0] == theirs
    assert [(e["manager"], e["operation"]) for e in entries] == [
        ("kube-controller-manager", "Update"),
        (FIELD_MANAGER, "Apply"),
    ]


def test_nothing_to_hand_over_without_our_update_entry():
    assert as_applied(created(entry("someone-else", "Update"))) is None
    assert as_applied(created()) is None
    assert as_applied({"metadata": {}}) is None


def test_never_a_second_apply_entry_of_ours():
    assert as_applied(created(entry(FIELD_MANAGER, "Apply"), entry(FIELD_MANAGER, "Update"))) is None


def test_no_version_no_precondition_no_patch():
    assert as_applied(created(entry(FIELD_MANAGER, "Update"), version="")) is None
