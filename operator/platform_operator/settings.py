"""The operator's own settings, from environment variables prefixed PLATFORM_ (the chart sets them)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLATFORM_", extra="ignore")

    resync_seconds: float = Field(60.0, gt=0, description="How often every service is checked for drift.")
    namespaces: str = Field("", description="Comma-separated namespaces to watch; empty watches all.")
    otel_endpoint: str = Field("", description="OTLP endpoint given to services as OTEL_EXPORTER_OTLP_ENDPOINT.")
    liveness_port: int = Field(8080, description="Port of kopf's liveness endpoint (/healthz).")
    standalone: bool = Field(True, description="Run without peering (one replica).")
    peering_name: str = Field("platform-operator", description="The KopfPeering object used when not standalone.")

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
