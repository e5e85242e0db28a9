"""In-memory stand-ins for the operator's doors (kube.Kube, rabbitmq.RabbitMQ, redis_store.RedisStore,
postgres.Postgres), for unit tests of the reconcile and the cleanup only.

Each has the methods the reconcile and cleanup call, with the same signatures and return types, and
raises the door's own error classes. What they model is the part the orchestration depends on: an
object store with resourceVersions and uids (apply replaces the fields we set and keeps status), a
broker that holds users, exchanges and queues with message counts, a Redis with ACL users and keys,
and a PostgreSQL with databases. Every door can be made unavailable (`down`), and the API server can
refuse a kind (`refuse`). Every call is recorded in `calls` with the asyncio task that made it, and
every call yields to the event loop first, so that concurrent reconciles interleave wherever they can.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from platform_operator import cache, database, messaging
from platform_operator.claims import ClaimLookup
from platform_operator.conditions import Condition
from platform_operator.credentials import Credentials
from platform_operator.kube import ConflictError, RefusedError, UnavailableError
from platform_operator.model import API_VERSION, KIND, PlatformService
from platform_operator.postgres import PostgresUnavailable, Provisioned
from platform_operator.provision import provision_queues
from platform_operator.rabbitmq import BrokerUnavailable, CleanupResult, ProvisionResult
from platform_operator.redis_store import CacheUnavailable
from platform_operator.status import Outcome

Key = tuple[str, str, str]  # kind, namespace, name


def _task() -> str:
    task = asyncio.current_task()
    return task.get_name() if task is not None else ""


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386: dicts merge, None removes, anything else (lists too) replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class _Door:
    """What every fake shares: the call log, and `down` (the next calls raise `unavailable`)."""

    system = ""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []  # (task, method, arguments)
        self.down = False

    def _unavailable(self) -> Exception:
        raise NotImplementedError

    async def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((_task(), method, args))
        await asyncio.sleep(0)
        if self.down:
            raise self._unavailable()

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for _, m, args in self.calls if m == method]


class FakeKube(_Door):
    """An API server for one field manager: objects by (kind, namespace, name)."""

    system = "API server"

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[Key, dict[str, Any]] = {}
        self.refuse: dict[str, str] = {}  # kind -> the API server's message when it refuses an apply
        self._versions = itertools.count(100)
        self._uids = itertools.count(1)

    def _unavailable(self) -> Exception:
        return UnavailableError("the API server is unavailable (fake)")

    # --- what tests do to the cluster directly ----------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Stores an object as a hand (or another controller) would: a new version, a uid if new."""
        obj = copy.deepcopy(dict(obj))
        meta = obj.setdefault("metadata", {})
        key = (str(obj["kind"]), str(meta.get("namespace")), str(meta["name"]))
        old = self.objects.get(key)
        meta.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def edit(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A change by hand (kubectl edit): merged into the object, which gets a new version."""
        obj = self.objects[(kind, namespace, name)]
        merge_patch(obj, patch)
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(obj)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def child(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def kinds(self, namespace: str) -> set[str]:
        return {k for k, ns, _ in self.objects if ns == namespace and k != KIND}

    def writes(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [(m, a) for _, m, a in self.calls if m in ("apply", "create", "delete", "merge_patch", "patch_status")]

    # --- kube.Kube's methods -------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        await self._enter("get", api_version, kind, namespace, name)
        return self.child(kind, namespace, name)

    async def read(
        self, api_version: str, kind: str, namespace: str, name: str, *, trust_absence: bool = False
    ) -> dict[str, Any] | None:
        await self._enter("read", api_version, kind, namespace, name)
        return self.child(kind, namespace, name)

    async def apply(
        self, obj: Mapping[str, Any], *, if_version: str | None = None, field_manager: str = "platform-operator"
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        await self._enter("apply", obj["kind"], meta["namespace"], meta["name"], field_manager)
        if obj["kind"] in self.refuse:
            raise RefusedError(self.refuse[obj["kind"]])
        key = (str(obj["kind"]), str(meta["namespace"]), str(meta["name"]))
        old = self.objects.get(key)
        if if_version is not None and (old is None or old["metadata"]["resourceVersion"] != if_version):
            raise ConflictError(f"{obj['kind']} {meta['name']}: the object has been modified")
        new = copy.deepcopy(dict(obj))
        if old is not None:
            if field_manager != "platform-operator":  # another manager's share: only what it sets
                merged = copy.deepcopy(old)
                merge_patch(merged, {k: v for k, v in new.items() if k != "metadata"})
                new = merged
            new["metadata"] = {**old["metadata"], **new["metadata"]}
            if "status" in old:
                new["status"] = old["status"]
            new["metadata"].pop("resourceVersion", None)
        return self.put(new)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        await self._enter("create", obj["kind"], meta["namespace"], meta["name"])
        if obj["kind"] in self.refuse:
            raise RefusedError(self.refuse[obj["kind"]])
        if (obj["kind"], meta["namespace"], meta["name"]) in self.objects:
            return None
        return self.put(obj)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> bool:
        await self._enter("delete", kind, namespace, name)
        obj = self.objects.get((kind, namespace, name))
        if obj is None or obj["metadata"]["uid"] != uid:
            return False
        del self.objects[(kind, namespace, name)]
        return True

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        await self._enter("merge_patch", kind, namespace, name)
        if (kind, namespace, name) not in self.objects:
            return None
        return self.edit(kind, namespace, name, body)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self._enter("patch_status", namespace, name, dict(status))
        obj = self.objects[(KIND, namespace, name)]
        merge_patch(obj.setdefault("status", {}), status)
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def observe(self, obj: Mapping[str, Any]) -> None:
        pass  # the real door keeps a watch's report for its reads; this one always reads the store

    def observe_gone(self, kind: str, namespace: str, name: str) -> None:
        pass


class FakeRabbitMQ(_Door):
    """A vhost: users with passwords, exchanges, queues with their message counts."""

    system = "RabbitMQ"

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, str] = {}
        self.exchanges: set[str] = set()
        self.queues: dict[str, int] = {}  # name -> messages

    def _unavailable(self) -> Exception:
        return BrokerUnavailable("RabbitMQ management API is unreachable (fake)")

    async def provision(self, topo: messaging.Topology, password: str) -> ProvisionResult:
        await self._enter("provision", topo.user)
        out = ProvisionResult()
        if self.users.get(topo.user) != password:
            self.users[topo.user] = password
            out.written.append(f"user {topo.user}")
        for exchange in topo.exchanges:
            if exchange.name not in self.exchanges:
                self.exchanges.add(exchange.name)
                out.written.append(f"exchange {exchange.name}")
        for queue in topo.queues:
            if queue.name not in self.queues:
                self.queues[queue.name] = 0
                out.written.append(f"queue {queue.name}")
        return out

    async def queue_stats(self, names: Iterable[str]) -> list[dict[str, Any]]:
        names = list(names)
        await self._enter("queue_stats", *names)
        return [{"name": n, "messages": self.queues[n], "consumers": 0} for n in names if n in self.queues]

    async def release_queues(self, queues: Iterable[str], *, delete: bool, force: bool) -> CleanupResult:
        names = list(queues)
        await self._enter("release_queues", *names)
        out = CleanupResult()
        for name in names:
            if not delete or (self.queues.get(name) and not force):
                out.kept.append(f"queue {name} (unbound)")
                continue
            if self.queues.pop(name, None) is not None:
                out.deleted.append(f"queue {name}")
        return out

    async def deprovision(self, topo: messaging.Topology, exchanges: Iterable[str], *, force: bool) -> CleanupResult:
        names = list(exchanges)
        await self._enter("deprovision", topo.user, *names)
        out = CleanupResult()
        for queue in topo.queues:
            messages = self.queues.get(queue.name)
            if messages and not force:
                out.kept.append(f"queue {queue.name} ({messages} messages)")
            elif messages is not None:
                del self.queues[queue.name]
                out.deleted.append(f"queue {queue.name}")
        for name in names:
            if name in self.exchanges:
                self.exchanges.discard(name)
                out.deleted.append(f"exchange {name}")
        if self.users.pop(topo.user, None) is not None:
            out.deleted.append(f"user {topo.user}")
        return out

    async def delete_user(self, user: str) -> bool:
        await self._enter("delete_user", user)
        return self.users.pop(user, None) is not None


class FakeRedis(_Door):
    """ACL users (their password and key pattern) and keys."""

    system = "Redis"

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}

    def _unavailable(self) -> Exception:
        return CacheUnavailable("Redis is unreachable (fake)")

    async def get_user(self, user: str) -> dict[str, Any] | None:
        await self._enter("get_user", user)
        found = self.users.get(user)
        return dict(found) if found is not None else None

    async def ensure_user(self, plan: cache.CachePlan, password: str) -> bool:
        await self._enter("ensure_user", plan.user)
        wanted = {"password": password, "keys": plan.key_pattern}
        if self.users.get(plan.user) == wanted:
            return False
        self.users[plan.user] = wanted
        return True

    async def seed(self, plan: cache.CachePlan) -> int:
        await self._enter("seed", plan.user)
        count = 0
        for seed in plan.seeds:
            if seed.key not in self.keys:
                self.keys[seed.key] = seed.value
                count += 1
        return count

    async def delete_user(self, user: str) -> bool:
        await self._enter("delete_user", user)
        return self.users.pop(user, None) is not None

    async def delete_keys(self, prefix: str, *, batch: int = 500) -> int:
        await self._enter("delete_keys", prefix)
        gone = [k for k in self.keys if k.startswith(f"{prefix}:")]
        for key in gone:
            del self.keys[key]
        return len(gone)

    async def users_lost(self) -> bool:
        await self._enter("users_lost")
        return False


class FakePostgres(_Door):
    """Databases with their owner role, whether that role may log in, and the tables holding rows."""

    system = "PostgreSQL"

    def __init__(self) -> None:
        super().__init__()
        self.host, self.port = "postgres.example", 5432
        self.databases: dict[str, dict[str, Any]] = {}  # name -> {role, password, login, full}

    def _unavailable(self) -> Exception:
        return PostgresUnavailable("PostgreSQL is unreachable (fake)")

    async def ensure(self, plan: database.DatabasePlan, password: str) -> Provisioned:
        await self._enter("ensure", plan.database)
        out = Provisioned()
        db = self.databases.get(plan.database)
        if db is None:
            self.databases[plan.database] = {"role": plan.role, "password": password, "login": True, "full": []}
            out.written += [f"role {plan.role}", f"database {plan.database}"]
        elif (db["password"], db["login"]) != (password, True):
            db.update(password=password, login=True)
            out.written.append(f"role {plan.role}")
        return out

    async def retire(self, plan: database.DatabasePlan) -> bool:
        await self._enter("retire", plan.database)
        db = self.databases.get(plan.database)
        if db is None or not db["login"]:
            return False
        db["login"] = False
        return True

    async def holds_rows(self, plan: database.DatabasePlan) -> list[str]:
        await self._enter("holds_rows", plan.database)
        return list((self.databases.get(plan.database) or {}).get("full") or [])

    async def drop(self, plan: database.DatabasePlan) -> list[str]:
        await self._enter("drop", plan.database)
        if self.databases.pop(plan.database, None) is None:
            return []
        return [f"database {plan.database}", f"role {plan.role}"]


def platform_service(
    name: str, namespace: str = "shop", *, created: str = "2026-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    """A PlatformService as the API server stores it (the spec keys are the CRD's)."""
    spec.setdefault("image", "registry.example/orders:1.4.2")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": spec,
    }


def provision_queues_with(
    broker: Any,
    svc: PlatformService,
    previous: Mapping[str, Any] | None = None,
    claims: ClaimLookup = lambda _: [],
    said: list[tuple[str, str, str]] | None = None,
) -> tuple[Condition, list[dict[str, Any]], Outcome]:
    """provision_queues as the reconcile calls it (the credentials Secret in place), against a
    stand-in `broker`; the Events it tells go to `said` when given."""
    outcome = Outcome(status={})

    def say(kind: str, reason: str, message: str) -> None:
        if said is not None:
            said.append((kind, reason, message))

    cond, queues = asyncio.run(
        provision_queues(
            svc,
            messaging.plan(svc),
            broker,
            Credentials("rabbit-pass", "redis-pass", ""),
            True,
            outcome,
            say,
            previous or {},
            claims,
        )
    )
    return cond, queues, outcome
