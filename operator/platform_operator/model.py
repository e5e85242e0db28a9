"""The PlatformService spec as typed values.

The API server has already validated and defaulted the object against the CRD in `crds/`; this
model gives the builders typed access and applies the same defaults again, so that an object
stored before a default existed (or a test's plain dict) reads the same. It does no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "platform.dev"
VERSION = "v1alpha1"
PLURAL = "platformservices"
KIND = "PlatformService"
API_VERSION = f"{GROUP}/{VERSION}"

ServiceType = Literal["data", "api", "bot", "worker"]
# "true" on a PlatformService: the operator writes nothing for it (children, broker, Redis, status
# beyond saying it is paused) until the annotation is removed or set to anything else.
PAUSED_ANNOTATION = "platform.dev/paused"


def is_paused(annotations: Any) -> bool:
    return str((annotations or {}).get(PAUSED_ANNOTATION, "")).lower() == "true"


class _Model(BaseModel):
    # The API server prunes unknown fields; ignoring extras keeps the operator working while a
    # newer CRD with more fields is rolled out.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_Model):
    name: str
    key: str


class DatabaseSecretRef(SecretKeyRef):
    key: str = "dsn"


class BotTokenSecretRef(SecretKeyRef):
    key: str = "token"


class Database(_Model):
    engine: Literal["postgres", "mongo"]
    # Bring your own (a Secret holding the DSN), or, for postgres, one the operator provisions.
    secret_ref: DatabaseSecretRef | None = None
    provision: bool = False
    delete_with_data: bool = False


class Health(_Model):
    liveness_path: str = "/health"
    readiness_path: str = "/ready"


class Resources(_Model):
    requests: dict[str, str | int] = Field(default_factory=dict)
    limits: dict[str, str | int] = Field(default_factory=dict)


class Exchange(_Model):
    name: str
    type: Literal["topic", "direct", "fanout"] = "topic"
    # Other namespaces whose services may bind queues of their own to this exchange.
    shared_with: tuple[str, ...] = ()


class Consume(_Model):
    queue: str
    exchange: str
    exchange_namespace: str | None = None  # another namespace's exchange, shared with this one
    routing_keys: tuple[str, ...] = ("#",)
    prefetch: int = 10
    max_retries: int = 3
    retry_delay_seconds: int = 10
    dead_letter: bool = True
    message_ttl_seconds: int | None = Field(default=None, alias="messageTTLSeconds")
    max_length: int | None = None


class Messaging(_Model):
    publishes: tuple[Exchange, ...] = ()
    consumes: tuple[Consume, ...] = ()
    delete_queues_with_messages: bool = False


class SeedKey(_Model):
    key: str
    value: str
    ttl_seconds: int | None = None


class Redis(_Model):
    key_prefix: str | None = None
    keys: tuple[SeedKey, ...] = ()
    idempotency_ttl_seconds: int = Field(default=86400, alias="idempotencyTTLSeconds")


class TLS(_Model):
    secret_name: str


class RateLimit(_Model):
    rps: int
    burst: int | None = None


class Cors(_Model):
    allow_origins: tuple[str, ...]


class Ingress(_Model):
    host: str
    path: str = "/"
    tls: TLS | None = None
    rate_limit: RateLimit | None = None
    cors: Cors | None = None
    max_body_size: str | None = None


class Bot(_Model):
    mode: Literal["polling", "webhook"] = "polling"
    token_secret_ref: BotTokenSecretRef


class Autoscaling(_Model):
    min_replicas: int = 1
    max_replicas: int
    target_cpu_utilization_percentage: int | None = Field(default=None, alias="targetCPUUtilizationPercentage")
    target_memory_utilization_percentage: int | None = Field(default=None, alias="targetMemoryUtilizationPercentage")


class Pod(_Model):
    """spec.pod: scheduling, identity, private images and volumes of the service's pods.

    Tolerations, affinity, spread constraints and volumes are kept in the Kubernetes shape the CRD
    allows (its schema lists every field, so nothing that could break the restricted Pod Security
    profile gets this far)."""

    image_pull_secrets: tuple[dict[str, Any], ...] = ()
    service_account_name: str | None = None
    automount_service_account_token: bool = False
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: tuple[dict[str, Any], ...] = ()
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    volumes: tuple[dict[str, Any], ...] = ()
    priority_class_name: str | None = None


class Metrics(_Model):
    """spec.metrics: where the pods serve Prometheus metrics (every reference service serves /metrics
    on its HTTP port)."""

    enabled: bool = True
    port: int | None = None  # None: spec.port
    path: str = "/metrics"


class Spec(_Model):
    type: ServiceType
    image: str
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[dict[str, Any], ...] = ()
    resources: Resources | None = None
    port: int = 8000
    health: Health = Health()
    database: Database | None = None
    depends_on: tuple[str, ...] = ()
    messaging: Messaging = Messaging()
    redis: Redis = Redis()
    ingress: Ingress | None = None
    bot: Bot | None = None
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    pod: Pod = Pod()
    metrics: Metrics = Metrics()


class PlatformService(_Model):
    """The parts of a PlatformService object the operator reads."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: Spec

    @classmethod
    def from_body(cls, body: Any) -> PlatformService:
        """Reads a PlatformService from its object body (a dict or kopf's Body)."""
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta.get("uid", ""),
            generation=meta.get("generation", 1),
            spec=Spec.model_validate(dict(body.get("spec") or {})),
        )

    @property
    def key_prefix(self) -> str:
        """Every key of the service starts with this: `<namespace>:` and then spec.redis.keyPrefix
        (default: the service's name). Nothing a spec says can reach above its namespace's prefix."""
        return f"{self.namespace}:{self.spec.redis.key_prefix or self.name}"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-platform"

    @property
    def has_service(self) -> bool:
        """data, api and webhook bots take inbound HTTP; workers and polling bots do not."""
        return self.spec.type in ("data", "api") or self.is_webhook_bot

    @property
    def is_webhook_bot(self) -> bool:
        return self.spec.type == "bot" and self.spec.bot is not None and self.spec.bot.mode == "webhook"

    @property
    def spreads(self) -> bool:
        """More than one pod (now or once the HorizontalPodAutoscaler adds some): spread them over
        nodes and keep a PodDisruptionBudget."""
        return self.spec.autoscaling is not None or self.spec.replicas > 1

    @property
    def metrics_port(self) -> int:
        return self.spec.metrics.port or self.spec.port

    @property
    def wants_ingress(self) -> bool:
        return self.spec.ingress is not None and (self.spec.type == "api" or self.is_webhook_bot)
