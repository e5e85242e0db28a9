"""The chart carries a copy of the CRD; the repository's crds/ is the source of truth."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_charts_crd_is_the_same_as_crds():
    source = ROOT / "crds" / "platformservices.platform.dev.yaml"
    copy = ROOT / "charts" / "crds" / "platformservices.platform.dev.yaml"
    assert copy.read_bytes() == source.read_bytes(), "run: cp crds/*.yaml charts/crds/"


def test_every_values_key_is_in_the_schema_and_documented():
    values = yaml.safe_load((ROOT / "charts" / "values.yaml").read_text())
    schema = json.loads((ROOT / "charts" / "values.schema.json").read_text())

    def walk(v: dict, s: dict, path: str) -> None:
        assert s.get("additionalProperties") is False, f"{path or 'root'} must refuse unknown keys"
        for key, val in v.items():
            assert key in s["properties"], f"{path}{key} missing from values.schema.json"
            sub = s["properties"][key]
            if isinstance(val, dict) and sub.get("properties"):
                walk(val, sub, f"{path}{key}.")
            else:
                assert sub.get("description"), f"{path}{key} has no description"

    walk(values, schema, "")
