"""The operator's log level setting (PLATFORM_LOG_LEVEL; the chart's logLevel)."""

from __future__ import annotations

import logging

import pytest

from platform_operator.settings import OperatorSettings


def test_log_level_defaults_to_info(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PLATFORM_LOG_LEVEL", raising=False)
    assert OperatorSettings().log_level == "INFO"


@pytest.mark.parametrize("given", ["debug", "DEBUG", "Debug"])
def test_log_level_in_any_case_names_a_logging_level(monkeypatch: pytest.MonkeyPatch, given: str):
    monkeypatch.setenv("PLATFORM_LOG_LEVEL", given)
    level = OperatorSettings().log_level
    assert logging.getLevelNamesMapping()[level] == logging.DEBUG


def test_unknown_level_is_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLATFORM_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="log_level"):
        OperatorSettings()
