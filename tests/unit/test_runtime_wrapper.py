"""hack/offline/oci-runtime-wrapper: what it takes out of an OCI spec before runc sees it, and what it leaves.

The wrapper is what lets `docker run --privileged` (kind's node containers) start on machines whose
capability bounding set lacks CAP_SYS_RESOURCE; if it dropped too much, or edited the wrong file,
containers would start with fewer rights than asked for, or not at all.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

WRAPPER_PATH = Path(__file__).resolve().parents[2] / "hack" / "offline" / "oci-runtime-wrapper"


def load_wrapper() -> ModuleType:
    loader = SourceFileLoader("oci_runtime_wrapper", str(WRAPPER_PATH))
    spec = spec_from_loader("oci_runtime_wrapper", loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


wrapper = load_wrapper()

ALL_CAPS = list(wrapper.CAPABILITY_NAMES)
# CapBnd of the build machines: every capability up to 40 but CAP_SYS_RESOURCE (24).
SANDBOX_CAP_BND = "000001fffeffffff"


def privileged_spec() -> dict[str, Any]:
    """What dockerd writes to config.json for `docker run --privileged` (the parts that matter)."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "args": ["/sbin/init", "CAP_SYS_RESOURCE"],
            "env": ["PATH=/usr/bin", "container=docker"],
            "capabilities": {name: list(ALL_CAPS) for name in wrapper.CAPABILITY_SETS if name != "ambient"},
        },
        "linux": {"namespaces": [{"type": "pid"}]},
    }


def test_the_sandbox_bounding_set_lacks_only_sys_resource() -> None:
    assert wrapper.missing_capabilities(SANDBOX_CAP_BND, 40) == {"CAP_SYS_RESOURCE"}


def test_a_full_bounding_set_drops_nothing() -> None:
    assert wrapper.missing_capabilities("000001ffffffffff", 40) == frozenset()


def test_capabilities_the_kernel_does_not_know_are_not_reported_missing() -> None:
    # An older kernel (last cap 37) does not know PERFMON, BPF, CHECKPOINT_RESTORE: runc skips those.
    assert wrapper.missing_capabilities("0000003fffffffff", 37) == frozenset()


def test_privileged_spec_loses_only_the_dropped_capability_in_every_set() -> None:
    spec = privileged_spec()

    assert wrapper.strip_spec_capabilities(spec, {"CAP_SYS_RESOURCE"}) is True

    expected = [name for name in ALL_CAPS if name != "CAP_SYS_RESOURCE"]
    for name in ("bounding", "effective", "inheritable", "permitted"):
        assert spec["process"]["capabilities"][name] == expected
    # Only capability sets are touched: an argument that happens to spell the name stays.
    assert spec["process"]["args"] == ["/sbin/init", "CAP_SYS_RESOURCE"]
    assert spec["linux"] == {"namespaces": [{"type": "pid"}]}


def test_default_capabilities_are_left_alone() -> None:
    spec = privileged_spec()
    spec["process"]["capabilities"] = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"]}

    assert wrapper.strip_spec_capabilities(spec, {"CAP_SYS_RESOURCE"}) is False
    assert spec["process"]["capabilities"] == {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"]}


def test_spec_without_process_or_capabilities_is_unchanged() -> None:
    assert wrapper.strip_spec_capabilities({"ociVersion": "1.0.2"}, {"CAP_SYS_RESOURCE"}) is False
    assert wrapper.strip_process_capabilities({"args": ["sh"]}, {"CAP_SYS_RESOURCE"}) is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["create", "--bundle", "/b", "id"], 0),
        (["--root", "/run/runc", "--log", "/l.json", "--log-format", "json", "create", "id"], 6),
        (["--root=/run/runc", "--systemd-cgroup", "--debug", "run", "id"], 3),
        (["--root", "/run/runc", "state", "id"], 2),
        (["--root", "/run/runc"], None),
    ],
)
def test_finds_runc_subcommand_after_global_flags(args: list[str], expected: int | None) -> None:
    assert wrapper.find_command(args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--root", "/r", "create", "--bundle", "/bundles/c1", "--pid-file", "/p", "c1"], "/bundles/c1/config.json"),
        (["create", "-b", "/bundles/c2", "c2"], "/bundles/c2/config.json"),
        (["run", "--bundle=/bundles/c3", "c3"], "/bundles/c3/config.json"),
        (["--root", "/r", "exec", "--process", "/tmp/runc-process1", "--detach", "c1"], "/tmp/runc-process1"),
        (["exec", "-p", "/tmp/p2", "c1"], "/tmp/p2"),
        (["exec", "--process=/tmp/p3", "c1"], "/tmp/p3"),
    ],
)
def test_the_file_to_edit_follows_the_command(args: list[str], expected: str) -> None:
    target = wrapper.spec_file(args)
    assert target is not None
    assert target[1] == expected


def test_create_without_bundle_uses_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert wrapper.spec_file(["create", "c1"]) == ("create", str(tmp_path / "config.json"))


@pytest.mark.parametrize(
    "args",
    [
        ["--root", "/r", "start", "c1"],
        ["--root", "/r", "kill", "c1", "9"],
        ["delete", "--force", "c1"],
        ["exec", "c1", "sh"],  # no --process: nothing to edit, args only
        ["--version"],
    ],
)
def test_other_commands_edit_nothing(args: list[str]) -> None:
    assert wrapper.spec_file(args) is None


def test_exec_cap_flags_for_dropped_capabilities_are_removed() -> None:
    args = ["--root", "/r", "exec", "--cap", "CAP_SYS_RESOURCE", "-c", "CAP_KILL", "--cap=CAP_SYS_RESOURCE", "c1", "sh"]

    assert wrapper.rewrite_args(args, {"CAP_SYS_RESOURCE"}) == ["--root", "/r", "exec", "-c", "CAP_KILL", "c1", "sh"]


def test_cap_flags_of_other_commands_and_after_double_dash_stay() -> None:
    args = ["exec", "c1", "--", "tool", "--cap", "CAP_SYS_RESOURCE"]
    assert wrapper.rewrite_args(args, {"CAP_SYS_RESOURCE"}) == args
    assert wrapper.rewrite_args(["create", "c1"], {"CAP_SYS_RESOURCE"}) == ["create", "c1"]


def test_config_json_is_rewritten_in_place_keeping_its_mode(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(privileged_spec()), encoding="utf-8")
    config.chmod(0o600)

    changed = wrapper.edit_json_file(
        str(config), lambda obj: wrapper.strip_spec_capabilities(obj, {"CAP_SYS_RESOURCE"})
    )

    assert changed is True
    written = json.loads(config.read_text(encoding="utf-8"))
    assert "CAP_SYS_RESOURCE" not in written["process"]["capabilities"]["bounding"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"process": {"args": ["sh"]}}', encoding="utf-8")
    before = config.stat().st_mtime_ns

    assert wrapper.edit_json_file(str(config), lambda obj: wrapper.strip_spec_capabilities(obj, {"X"})) is False
    assert config.read_text(encoding="utf-8") == '{"process": {"args": ["sh"]}}'
    assert config.stat().st_mtime_ns == before


def test_configured_drop_list_overrides_the_bounding_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_DROP_CAPS", "CAP_SYS_RESOURCE, CAP_SYS_TIME")
    assert wrapper.capabilities_to_drop() == {"CAP_SYS_RESOURCE", "CAP_SYS_TIME"}


@pytest.mark.skipif(sys.platform != "linux", reason="execs a stand-in runc")
def test_main_edits_the_bundle_then_execs_runc_with_the_same_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(privileged_spec()), encoding="utf-8")
    execs: list[tuple[str, list[str]]] = []
    monkeypatch.setenv("PLATFORM_DROP_CAPS", "CAP_SYS_RESOURCE")
    monkeypatch.setenv("PLATFORM_REAL_RUNC", "/usr/sbin/runc")
    monkeypatch.setattr(os, "execv", lambda path, argv: execs.append((path, list(argv))))

    args = ["--root", "/run/r", "create", "--bundle", str(bundle), "c1"]
    wrapper.main(["oci-runtime-wrapper", *args])

    assert execs == [("/usr/sbin/runc", ["/usr/sbin/runc", *args])]
    written = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    assert "CAP_SYS_RESOURCE" not in written["process"]["capabilities"]["permitted"]
