"""Runs last (file order): no password the operator generated in this run reached its log."""

from __future__ import annotations

import pytest
from e2e_kube import SEEN_PASSWORDS, OperatorProcess, apply, psvc, remember_passwords, wait_ready


def test_no_generated_password_appears_in_the_operator_log(ns: str, operator):
    if not isinstance(operator, OperatorProcess):
        pytest.skip("scans the log of a local operator process")
    apply(psvc("last", type="worker", image="x", messaging={"consumes": [{"queue": f"{ns}.q", "exchange": "e"}]}), ns)
    wait_ready("last", ns)
    remember_passwords(ns)
    assert len(SEEN_PASSWORDS) >= 2  # this test's own broker and Redis passwords, at least
    log = operator.log_path.read_text(errors="replace")
    leaked = [p for p in SEEN_PASSWORDS if p in log]
    assert leaked == [], f"{len(leaked)} generated passwords found in the operator log"
