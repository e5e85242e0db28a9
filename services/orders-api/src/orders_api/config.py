"""orders-api's settings: what the platform provides (PlatformSettings) plus a few of its own.

Its own names avoid `<SERVICE>_PORT`-style names on purpose: Kubernetes service links inject
variables such as ORDERS_API_PORT=tcp://... into every pod of the namespace.
"""

from __future__ import annotations

from pydantic import Field

from platform_contract import PlatformSettings, data_url_variable

USERS_DATA = "users-data"
USERS_DATA_URL_VARIABLE = data_url_variable(USERS_DATA)  # DATA_USERS_DATA_URL


class ConfigurationError(Exception):
    """A setting the service cannot run without is missing; the message says where it comes from."""


class Settings(PlatformSettings):
    users_data_url: str = Field("", alias=USERS_DATA_URL_VARIABLE)

    listen_host: str = Field("0.0.0.0", alias="LISTEN_HOST")  # noqa: S104 - in a pod, the pod IP must answer
    listen_port: int = Field(8000, alias="LISTEN_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    users_data_timeout_seconds: float = Field(3.0, alias="USERS_DATA_TIMEOUT_SECONDS")
    # How long a POST may hold its Idempotency-Key before another request with the key may proceed.
    idempotency_lock_seconds: int = Field(30, alias="IDEMPOTENCY_LOCK_SECONDS")
    ready_timeout_seconds: float = Field(2.0, alias="READY_TIMEOUT_SECONDS")

    def events_exchange(self) -> str:
        """Where order events go: the first exchange of spec.messaging.publishes."""
        names = [n.strip() for n in self.rabbitmq_publishes.split(",") if n.strip()]
        if not names:
            raise ConfigurationError("RABBITMQ_PUBLISHES is empty: add the orders exchange to spec.messaging.publishes")
        return names[0]

    def check(self) -> None:
        """Fails at start-up, with the fix, rather than on the first request."""
        missing = {
            "REDIS_URL": "the operator sets it when it manages Redis (PLATFORM_REDIS_URL)",
            "RABBITMQ_URL": "the operator sets it when spec.messaging is declared",
            USERS_DATA_URL_VARIABLE: f"add {USERS_DATA} to spec.dependsOn",
        }
        values = {
            "REDIS_URL": self.redis_url,
            "RABBITMQ_URL": self.rabbitmq_url,
            USERS_DATA_URL_VARIABLE: self.users_data_url,
        }
        problems = [f"{name} is not set: {why}" for name, why in missing.items() if not values[name]]
        if problems:
            raise ConfigurationError("; ".join(problems))
        self.events_exchange()
