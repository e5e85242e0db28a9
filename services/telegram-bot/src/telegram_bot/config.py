"""The bot's settings: what the platform provides (PlatformSettings) plus the bot's own, with defaults.

BOT_TOKEN, BOT_MODE and BOT_WEBHOOK_URL are set on the Deployment by the operator (from
spec.bot); ORDERS_API_URL comes from the PlatformService's own spec.env. The rest exist so that
the bot can be run and tested outside a cluster.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from platform_contract import PlatformSettings

TELEGRAM_API = "https://api.telegram.org"


class Settings(PlatformSettings):
    bot_token: SecretStr = Field(SecretStr(""), alias="BOT_TOKEN")
    bot_mode: Literal["polling", "webhook"] = Field("polling", alias="BOT_MODE")
    bot_webhook_url: str = Field("", alias="BOT_WEBHOOK_URL")

    # Not from the platform: tests point aiogram at a stand-in Bot API server.
    telegram_api_url: str = Field(TELEGRAM_API, alias="TELEGRAM_API_URL")
    orders_api_url: str = Field("http://orders-api", alias="ORDERS_API_URL")
    orders_api_timeout_seconds: float = Field(5.0, alias="ORDERS_API_TIMEOUT_SECONDS", gt=0)
    http_port: int = Field(8000, alias="HTTP_PORT")
    # An abandoned conversation should not keep its keys in Redis for ever.
    conversation_ttl_seconds: int = Field(86400, alias="CONVERSATION_TTL_SECONDS", gt=0)
    # Below the Pod's default terminationGracePeriodSeconds (30 s).
    shutdown_grace_seconds: float = Field(20.0, alias="SHUTDOWN_GRACE_SECONDS", ge=0)
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        if not self.bot_token.get_secret_value():
            raise ValueError("BOT_TOKEN is not set: spec.bot.tokenSecretRef names the Secret that holds it")
        if self.bot_mode == "webhook" and not self.bot_webhook_url:
            raise ValueError("BOT_MODE is webhook but BOT_WEBHOOK_URL is not set: give the PlatformService an ingress")
        return self

    @property
    def webhook_path(self) -> str:
        """Where Telegram's POSTs arrive: the path of the public URL (the ingress forwards it unchanged)."""
        return urlsplit(self.bot_webhook_url).path or "/"

    @property
    def webhook_secret(self) -> str:
        """The secret Telegram echoes in X-Telegram-Bot-Api-Secret-Token on every webhook call.

        Derived from the bot token, so every replica agrees on it without another setting, and a
        POST that does not come from Telegram (anyone can reach the ingress) is refused.
        """
        token = self.bot_token.get_secret_value().encode()
        return hmac.new(token, b"telegram-webhook-secret", hashlib.sha256).hexdigest()
