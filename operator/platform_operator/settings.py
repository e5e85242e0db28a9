"""The operator's own settings, from environment variables prefixed PLATFORM_ (the chart sets them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLATFORM_", extra="ignore")

    resync_seconds: float = Field(60.0, gt=0, description="How often every service is checked for drift.")
    namespaces: str = Field("", description="Comma-separated namespaces to watch; empty watches all.")
    otel_endpoint: str = Field("", description="OTLP endpoint given to services as OTEL_EXPORTER_OTLP_ENDPOINT.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The least severe log records written (any case: debug, info, warning, error)."
    )
    liveness_port: int = Field(8080, description="Port of kopf's liveness endpoint (/healthz).")
    metrics_port: int = Field(9090, description="Port of the Prometheus metrics (/metrics); 0 disables them.")
    standalone: bool = Field(True, description="Run without peering (one replica).")
    peering_name: str = Field("platform-operator", description="The KopfPeering object used when not standalone.")
    peering_priority: int | None = Field(
        None, description="This replica's priority among peers; unset picks a random one (equal ones all pause)."
    )
    peering_lifetime: int = Field(60, gt=0, description="Seconds before a silent peer counts as gone.")
    max_concurrent_reconciles: int = Field(
        32,
        gt=0,
        description="Reconciles in flight at once, for each of two sorts: those that visit RabbitMQ and Redis "
        "(create, update, resync) and those that only look at the children (a child changed); more queue. Bounds "
        "the peak memory and the load put on the API server, RabbitMQ and Redis when many services change "
        "together (a restart, a mass apply).",
    )
    child_cache_seconds: float = Field(
        600.0,
        ge=0,
        description="How long a child (Deployment, Secret, ...) as the watch last reported it is trusted by "
        "reconciles and resyncs before it is read again from the API server; 0 reads it for every reconcile.",
    )

    shared_ingress_hosts: str = Field(
        "",
        description="Comma-separated ingress hosts any namespace may route paths of (e.g. a shared API "
        "gateway host); every other host belongs to the namespace whose PlatformService claimed it first.",
    )
    ingress_controller_namespace: str = Field(
        "ingress-nginx",
        description="The namespace of the ingress controller's pods: the NetworkPolicy of an api or webhook bot "
        "with an ingress admits them.",
    )
    ingress_controller_pod_labels: str = Field(
        "",
        description="Comma-separated key=value labels that pick the ingress controller's pods in its namespace, "
        "e.g. app.kubernetes.io/name=ingress-nginx; empty: every pod of that namespace.",
    )
    metrics_scraper_namespace_selector: str = Field(
        "kubernetes.io/metadata.name=monitoring",
        description="Comma-separated key=value labels of the namespaces whose pods may scrape the services' "
        "metrics port (where Prometheus runs); the NetworkPolicies admit them. Empty: every namespace.",
    )
    metrics_monitor_labels: str = Field(
        "",
        description="Comma-separated key=value labels added to every ServiceMonitor and PodMonitor, for a "
        "Prometheus that selects monitors by label (e.g. release=kube-prometheus-stack).",
    )
    sweep_seconds: float = Field(
        300.0,
        ge=0,
        description="How often broker and Redis users made for services whose PlatformService no longer "
        "exists are looked for and removed; 0 never.",
    )

    # RabbitMQ: the operator declares topology over AMQP and the rest through the management API;
    # services connect over AMQP.
    rabbitmq_management_url: str = Field("", description="e.g. http://rabbitmq:15672; empty: queues not managed.")
    rabbitmq_admin_user: str = Field("", description="A management user with the administrator tag.")
    rabbitmq_admin_password: str = Field("", repr=False)
    rabbitmq_vhost: str = Field("/", description="The virtual host services' queues live in.")
    rabbitmq_service_host: str = Field("rabbitmq", description="The AMQP host services connect to.")
    rabbitmq_service_port: int = Field(5672)
    rabbitmq_amqp_url: str = Field(
        "",
        repr=False,
        description="Where the operator declares exchanges, queues and bindings over AMQP, as its admin user; "
        "empty: the admin user at rabbitmq_service_host:rabbitmq_service_port, in rabbitmq_vhost.",
    )
    rabbitmq_amqp_channels: int = Field(4, gt=0, description="AMQP channels the declarations share.")
    broker_check_seconds: float = Field(
        10.0,
        ge=0,
        description="How often the operator checks that the broker still holds its marker (gone: the vhost was "
        "recreated or the broker restarted empty, and every service's topology is declared again at once); "
        "0 never (a lost AMQP connection still triggers the check).",
    )
    rabbitmq_max_concurrent_calls: int = Field(
        8,
        gt=0,
        description="Management API calls in flight at once; more wait their turn in the operator instead "
        "of timing out inside a busy RabbitMQ.",
    )
    rabbitmq_read_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long one listing of the vhost (users, permissions, exchanges, queues, bindings, "
        "policies) serves every reconcile's reads; 0 lists anew for each. Anything found missing or different "
        "is read again before it is written; drift made by hand is seen this much later at most.",
    )

    # Redis: the operator manages ACL users with an admin connection; services connect as themselves.
    redis_url: str = Field(
        "", description="Admin connection, e.g. redis://default:PASS@redis:6379/0; empty: not managed."
    )
    redis_admin_password: str = Field(
        "",
        repr=False,
        description="The admin password, when PLATFORM_REDIS_URL holds none: given apart, any character it holds "
        "reaches the operator intact (the chart does this).",
    )
    redis_check_seconds: float = Field(
        2.0,
        ge=0,
        description="How often the operator checks that Redis still holds the users it made (a marker user); "
        "when they are gone (Redis restarted without persistence), every service is provisioned again at once. "
        "0 never checks (each service's resync still repairs its user).",
    )
    redis_service_host: str = Field("redis", description="The Redis host services connect to.")
    redis_service_port: int = Field(6379)
    redis_db: int = Field(0)

    # PostgreSQL: the operator makes a role and a database per data service that asks for one
    # (spec.database.provision) with an admin role; services connect as their own role.
    postgres_admin_url: str = Field(
        "",
        repr=False,
        description="Admin connection, e.g. postgresql://platform_admin@postgres:5432/postgres, as a role with "
        "CREATEDB and CREATEROLE (a superuser is not needed); empty: databases not provisioned.",
    )
    postgres_admin_password: str = Field(
        "",
        repr=False,
        description="The admin password, when PLATFORM_POSTGRES_ADMIN_URL holds none (the chart gives it apart).",
    )
    postgres_service_host: str = Field(
        "", description="The PostgreSQL host services connect to; empty: the admin URL's host."
    )
    postgres_service_port: int = Field(0, description="Its port; 0: the admin URL's port.")
    postgres_timeout_seconds: float = Field(
        10.0, gt=0, description="Deadline of each connection and statement; a call as a whole gets three times it."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def amqp_url(self) -> str:
        if self.rabbitmq_amqp_url:
            return self.rabbitmq_amqp_url
        from urllib.parse import quote

        user, password = quote(self.rabbitmq_admin_user, safe=""), quote(self.rabbitmq_admin_password, safe="")
        host, port, vhost = self.rabbitmq_service_host, self.rabbitmq_service_port, quote(self.rabbitmq_vhost, safe="")
        return f"amqp://{user}:{password}@{host}:{port}/{vhost}"

    @property
    def shared_ingress_host_list(self) -> list[str]:
        return [h.strip() for h in self.shared_ingress_hosts.split(",") if h.strip()]

    @property
    def ingress_controller_pod_label_map(self) -> dict[str, str]:
        return _labels(self.ingress_controller_pod_labels)

    @property
    def metrics_scraper_namespace_labels(self) -> dict[str, str]:
        return _labels(self.metrics_scraper_namespace_selector)

    @property
    def metrics_monitor_label_map(self) -> dict[str, str]:
        return _labels(self.metrics_monitor_labels)

    @property
    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]


def _labels(text: str) -> dict[str, str]:
    """`a=b,c=d` as a map; a pair without `=` is a key with the empty value."""
    pairs = (p.strip().partition("=") for p in text.split(","))
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip()}
