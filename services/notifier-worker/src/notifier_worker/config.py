"""The worker's settings: the platform's (from the operator's Secret) plus a few of its own.

Its own settings have defaults and come from `spec.env` when a user wants to change them.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, model_validator

from platform_contract import PlatformSettings


class Settings(PlatformSettings):
    # Pods are reached on their own IP: the probes and Prometheus come from outside the pod.
    http_host: str = Field("0.0.0.0", alias="HTTP_HOST")  # noqa: S104  # nosec
    http_port: int = Field(8000, alias="HTTP_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # Below Kubernetes' default terminationGracePeriodSeconds (30) so we close cleanly before SIGKILL.
    shutdown_grace_seconds: float = Field(20.0, alias="SHUTDOWN_GRACE_SECONDS")
    # A notification that takes longer is a failure (and goes to the retry path).
    handler_timeout_seconds: float = Field(15.0, alias="HANDLER_TIMEOUT_SECONDS")
    # How long a message being handled stays claimed if its worker dies mid-way; must outlast
    # the handler timeout, or a slow send could be claimed by a redelivery and sent twice.
    claim_lease_seconds: int = Field(60, alias="CLAIM_LEASE_SECONDS")
    # Wait before reconnecting when RabbitMQ is unreachable at start (doubles up to the maximum).
    connect_backoff_seconds: float = Field(1.0, alias="CONNECT_BACKOFF_SECONDS")
    connect_backoff_max_seconds: float = Field(30.0, alias="CONNECT_BACKOFF_MAX_SECONDS")

    @model_validator(mode="after")
    def _lease_outlasts_handler(self) -> Settings:
        if self.claim_lease_seconds <= self.handler_timeout_seconds:
            raise ValueError(
                f"CLAIM_LEASE_SECONDS ({self.claim_lease_seconds}) must be greater than "
                f"HANDLER_TIMEOUT_SECONDS ({self.handler_timeout_seconds})"
            )
        return self

    @classmethod
    def from_mapping(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from exactly these variables (tests pass what the operator's Secret would hold)."""
        return cls.model_validate(dict(environ))
