"""The conversation's rules and the settings' checks: pure code, no server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from telegram_bot.config import Settings
from telegram_bot.domain.orders import (
    MAX_QUANTITY,
    InvalidInput,
    Order,
    idempotency_key,
    parse_confirmation,
    parse_item,
    parse_quantity,
)


@pytest.mark.parametrize(("text", "quantity"), [("1", 1), (" 3 ", 3), (str(MAX_QUANTITY), MAX_QUANTITY)])
def test_quantity_accepted(text: str, quantity: int) -> None:
    assert parse_quantity(text) == quantity


@pytest.mark.parametrize("text", ["0", "-2", "2.5", "three", "", None, str(MAX_QUANTITY + 1), "1e3"])
def test_quantity_refused_with_what_would_do(text: str | None) -> None:
    with pytest.raises(InvalidInput, match=f"whole number from 1 to {MAX_QUANTITY}"):
        parse_quantity(text)


def test_item_is_trimmed_and_commands_are_not_items() -> None:
    assert parse_item("  margherita   pizza ") == "margherita pizza"
    for text in ("", "   ", "/status", None, "x" * 101):
        with pytest.raises(InvalidInput):
            parse_item(text)


@pytest.mark.parametrize(("text", "answer"), [("yes", True), ("Yes ", True), ("y", True), ("no", False), ("N", False)])
def test_confirmation(text: str, answer: bool) -> None:
    assert parse_confirmation(text) is answer


def test_confirmation_neither_yes_nor_no() -> None:
    with pytest.raises(InvalidInput, match="yes or no"):
        parse_confirmation("maybe")


def test_idempotency_key_is_the_same_for_the_same_update_only() -> None:
    assert idempotency_key(42, 1001) == idempotency_key(42, 1001)
    assert idempotency_key(42, 1001) != idempotency_key(42, 1002)
    assert idempotency_key(42, 1001) != idempotency_key(43, 1001)


def test_order_from_orders_api_with_a_numeric_id() -> None:
    order = Order.from_api({"id": 17, "user_id": "5", "item": "tea", "quantity": 2, "created_at": "now"})
    assert order == Order(id="17", item="tea", quantity=2, status="")


def settings(**env: str) -> Settings:
    """Settings from environment-style names, as the Deployment gives them."""
    return Settings.model_validate(env)


def test_settings_refuse_a_webhook_bot_without_its_url() -> None:
    with pytest.raises(ValidationError, match="BOT_WEBHOOK_URL is not set"):
        settings(BOT_TOKEN="1:x", BOT_MODE="webhook")  # noqa: S106  # not a real token


def test_settings_refuse_a_missing_token() -> None:
    with pytest.raises(ValidationError, match="BOT_TOKEN is not set"):
        settings(BOT_MODE="polling")


def test_webhook_path_and_secret() -> None:
    token = "123:secret"  # noqa: S105  # made up
    webhook = settings(BOT_TOKEN=token, BOT_MODE="webhook", BOT_WEBHOOK_URL="https://bot.example.com/tg/hook")
    assert webhook.webhook_path == "/tg/hook"
    assert settings(BOT_TOKEN=token, BOT_WEBHOOK_URL="https://bot.example.com").webhook_path == "/"
    # Telegram allows only [A-Za-z0-9_-] in the secret, and the secret must not give the token away
    assert webhook.webhook_secret.isalnum()
    assert "secret" not in webhook.webhook_secret
    assert webhook.webhook_secret != settings(BOT_TOKEN=token + "2").webhook_secret
    assert token not in repr(webhook)
