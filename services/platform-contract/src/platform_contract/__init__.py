"""The contract between the operator and the services it runs: what a service may read.

A PlatformService's container gets its settings from the operator only: the credentials Secret
`<name>-platform` (loaded with envFrom), `DATA_<NAME>_URL` for each `dependsOn`, `DATABASE_*` for
data services and `BOT_*` for bots. This module names every one of them, once. The operator's
tests check that it writes exactly these names; the services read their settings through
`PlatformSettings` and nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# In the credentials Secret, for every service.
SECRET_VARIABLES = frozenset(
    {
        "SERVICE_NAME",
        "SERVICE_TYPE",
        "SERVICE_NAMESPACE",
        "REDIS_KEY_PREFIX",
        "IDEMPOTENCY_TTL_SECONDS",
        "REQUEST_ID_HEADER",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",  # when the operator is given an endpoint
        "RABBITMQ_URL",  # when the service declares messaging
        "RABBITMQ_CONSUMES",
        "RABBITMQ_PUBLISHES",
        "REDIS_URL",  # when the operator manages Redis
    }
)
# On the Deployment itself.
DATABASE_VARIABLES = frozenset({"DATABASE_URL", "DATABASE_ENGINE"})  # data services only
BOT_VARIABLES = frozenset({"BOT_TOKEN", "BOT_MODE", "BOT_WEBHOOK_URL"})  # bots only
DATA_URL_PREFIX, DATA_URL_SUFFIX = "DATA_", "_URL"


def data_url_variable(service: str) -> str:
    """DATA_<NAME>_URL of a data service named in dependsOn: users-data -> DATA_USERS_DATA_URL."""
    return f"{DATA_URL_PREFIX}{service.upper().replace('-', '_')}{DATA_URL_SUFFIX}"


def is_contract_variable(name: str) -> bool:
    if name in SECRET_VARIABLES | DATABASE_VARIABLES | BOT_VARIABLES:
        return True
    return name.startswith(DATA_URL_PREFIX) and name.endswith(DATA_URL_SUFFIX) and name not in {"DATABASE_URL"}


class Consume(BaseModel):
    """One entry of RABBITMQ_CONSUMES: how to consume a queue and follow its retry path."""

    queue: str
    prefetch: int = 10
    max_retries: int = Field(3, alias="maxRetries")
    retry_exchange: str = Field("", alias="retryExchange")
    dead_letter_queue: str = Field("", alias="deadLetterQueue")
    retry_header: str = Field("x-retry-count", alias="retryHeader")


class PlatformSettings(BaseSettings):
    """Everything a service gets from the platform; a service's own settings extend this class."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = Field("local", alias="SERVICE_NAME")
    service_type: str = Field("", alias="SERVICE_TYPE")
    service_namespace: str = Field("", alias="SERVICE_NAMESPACE")
    redis_key_prefix: str = Field("local", alias="REDIS_KEY_PREFIX")
    idempotency_ttl_seconds: int = Field(86400, alias="IDEMPOTENCY_TTL_SECONDS")
    request_id_header: str = Field("X-Request-ID", alias="REQUEST_ID_HEADER")
    otel_exporter_otlp_endpoint: str = Field("", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    rabbitmq_url: str = Field("", alias="RABBITMQ_URL")
    rabbitmq_consumes: str = Field("[]", alias="RABBITMQ_CONSUMES")
    rabbitmq_publishes: str = Field("", alias="RABBITMQ_PUBLISHES")
    redis_url: str = Field("", alias="REDIS_URL")

    def key(self, *parts: str) -> str:
        """A Redis key under the service's prefix (its ACL user may touch no other)."""
        return ":".join([self.redis_key_prefix, *parts])

    def consumes(self) -> list[Consume]:
        return [Consume.model_validate(c) for c in json.loads(self.rabbitmq_consumes or "[]")]

    def consume(self, queue: str) -> Consume:
        """The entry of a queue by its broker name, `<namespace>.<queue>` (or by the spec's name,
        when exactly one entry ends with it)."""
        entries = self.consumes()
        for c in entries:
            if c.queue == queue:
                return c
        by_spec_name = [c for c in entries if c.queue.partition(".")[2] == queue]
        if len(by_spec_name) == 1:
            return by_spec_name[0]
        raise KeyError(
            f"queue {queue} is not in RABBITMQ_CONSUMES (broker names, <namespace>.<queue>); add it to "
            "spec.messaging.consumes"
        )


def data_url(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The in-cluster URL of a data service this one dependsOn."""
    env = os.environ if environ is None else environ
    name = data_url_variable(service)
    try:
        return env[name]
    except KeyError:
        raise KeyError(f"{name} is not set: add {service} to spec.dependsOn") from None
