"""The one door to RabbitMQ: its management HTTP API, through httpx.

Every call reads first and writes only what differs, so a resync that finds the topology in place
sends no write to the broker either. Errors are sorted here: the broker unreachable (or failing)
is `BrokerUnavailable`; a resource that exists in a shape we must not change is a conflict that
the caller reports in a condition.

Reads come from a view of the whole vhost (six list calls: users, permissions, exchanges, queues,
bindings, policies), shared by every reconcile for `read_cache_seconds`: with a thousand services
resyncing, per-object reads were fifteen calls each, and every one listed all policies. What the
view lacks or shows different is declared (declarations are idempotent; one refused because the
object exists in another shape is read back and reported as a conflict); a binding is removed
only after a fresh read. Our own writes and deletions are applied to the view at once. What
changes behind the operator's back (a queue deleted by hand) is seen when the view is next read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx

from platform_operator import observability
from platform_operator.messaging import Topology, dlx_name, policy_prefix, retry_name

log = logging.getLogger("platform_operator")


class BrokerUnavailable(Exception):
    """The management API could not be reached, refused our credentials, or failed.

    Its message is the operator's own words (it reaches status and Events, which tenants read);
    the broker's answer goes to the operator's log only."""


# Every user the operator makes for a service carries this tag: the sweep of users whose
# PlatformService is gone touches no other user.
SERVICE_USER_TAG = "platform-service"


@dataclass
class ProvisionResult:
    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # shared exchanges not declared by their owner yet


@dataclass
class CleanupResult:
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # non-empty queues, kept with their messages


def _q(part: str) -> str:
    return quote(part, safe="")


def password_matches(password_hash: str, password: str, algorithm: str) -> bool:
    """Checks a password against RabbitMQ's salted hash, so an unchanged password is not rewritten."""
    digests = {
        "rabbit_password_hashing_sha256": hashlib.sha256,
        "rabbit_password_hashing_sha512": hashlib.sha512,
    }
    digest = digests.get(algorithm)
    if digest is None or not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return False
    salt, expected = raw[:4], raw[4:]
    return digest(salt + password.encode()).digest() == expected


@dataclass
class BrokerView:
    """What the vhost held when last listed, plus what this process has written or deleted since."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by user, in our vhost
    exchanges: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by queue; exchange->queue only
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_lists(
        cls,
        users: list[dict[str, Any]],
        permissions: list[dict[str, Any]],
        exchanges: list[dict[str, Any]],
        queues: list[dict[str, Any]],
        bindings: list[dict[str, Any]],
        policies: list[dict[str, Any]],
    ) -> BrokerView:
        view = cls(
            users={u["name"]: u for u in users},
            permissions={p["user"]: p for p in permissions},
            exchanges={e["name"]: e for e in exchanges},
            queues={q["name"]: q for q in queues},
            policies={p["name"]: p for p in policies},
        )
        for b in bindings:
            if b.get("source") and b.get("destination_type") == "queue":
                view.bindings.setdefault(b["destination"], []).append(b)
        return view


Change = Callable[[BrokerView], None]


class RabbitMQ:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        vhost: str,
        *,
        timeout: float = 5.0,
        read_cache_seconds: float = 5.0,
        max_concurrent_calls: int = 8,
    ) -> None:
        self.vhost = vhost
        self.base_url = base_url.rstrip("/")
        self.read_cache_seconds = read_cache_seconds
        self._http = httpx.AsyncClient(base_url=self.base_url + "/api", auth=(user, password), timeout=timeout)
        # The management API answers slower the more it is asked at once: past a few calls in
        # flight, declarations queue inside RabbitMQ until they time out. They queue here instead.
        self._calls = asyncio.Semaphore(max_concurrent_calls)
        self._view: BrokerView | None = None
        self._view_at = 0.0
        self._listing: asyncio.Future[BrokerView] | None = None
        self._listing_started = 0.0
        self._changes_while_listing: list[Change] = []

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            async with self._calls:
                with observability.outside_call("rabbitmq", method):
                    resp = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            log.warning("RabbitMQ %s %s: %r", method, path, exc)
            raise BrokerUnavailable(
                f"RabbitMQ management API at {self.base_url} unreachable ({type(exc).__name__})"
            ) from exc
        if resp.status_code in (401, 403):
            raise BrokerUnavailable(f"RabbitMQ at {self.base_url} refused the operator's admin credentials")
        if resp.status_code >= 500:
            raise _failed(method, path, resp)
        return resp

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        resp = await self._call("GET", path, params=params)
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise _failed("GET", path, resp)
        return resp.json()

    async def _write(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> int:
        resp = await self._call(method, path, json=body, params=params)
        if resp.status_code >= 400 and resp.status_code != 404:
            raise _failed(method, path, resp)
        return resp.status_code

    # --- the shared view ---------------------------------------------------------------------------

    async def view(self) -> BrokerView:
        """The vhost as listed at most read_cache_seconds ago; one listing serves every caller."""
        if self._view is not None and time.monotonic() - self._view_at < self.read_cache_seconds:
            return self._view
        if self._listing is None:
            self._listing = asyncio.ensure_future(self._list())
            self._listing.add_done_callback(self._listed)
        return await asyncio.shield(self._listing)

    def _listed(self, listing: asyncio.Future[BrokerView]) -> None:
        self._listing = None
        changes, self._changes_while_listing = self._changes_while_listing, []
        if listing.cancelled() or listing.exception() is not None:
            return
        view = listing.result()
        for change in changes:  # written while the lists were on their way: the lists may predate them
            change(view)
        self._view, self._view_at = view, self._listing_started

    async def _list(self) -> BrokerView:
        self._listing_started = time.monotonic()  # the view is as old as the first list asked for
        v = _q(self.vhost)
        users, permissions, exchanges, queues, bindings, policies = await asyncio.gather(
            self._get("/users"),
            self._get(f"/vhosts/{v}/permissions"),
            self._get(f"/exchanges/{v}", params={"columns": "name,type"}),
            self._get(f"/queues/{v}", params={"columns": "name,arguments,messages,consumers"}),
            self._get(f"/bindings/{v}"),
            self._get(f"/policies/{v}"),
        )
        return BrokerView.from_lists(
            users or [], permissions or [], exchanges or [], queues or [], bindings or [], policies or []
        )

    def _record(self, change: Change) -> None:
        """Applies our own write to the view, and to the listing in flight when it lands."""
        if self._view is not None:
            change(self._view)
        if self._listing is not None:
            self._changes_while_listing.append(change)

    def forget_view(self) -> None:
        self._view = None

    # --- provisioning ----------------------------------------------------------------------------

    async def provision(self, topo: Topology, password: str) -> ProvisionResult:
        """Declares what the view lacks or shows different. Declarations are idempotent, so a view
        that missed something created since costs one needless write; one RabbitMQ refuses (the
        object exists in another shape) is read back and reported as a conflict. Only removals
        (a binding no longer wanted) are confirmed by a fresh read first."""
        out = ProvisionResult()
        view = await self.view()
        v = _q(self.vhost)

        user = view.users.get(topo.user) or {}
        if (
            user.get("_password") != password
            and not password_matches(user.get("password_hash", ""), password, user.get("hashing_algorithm", ""))
        ) or not is_service_user(user):
            await self._write("PUT", f"/users/{_q(topo.user)}", {"password": password, "tags": SERVICE_USER_TAG})
            self._record(
                _put("users", topo.user, {"name": topo.user, "_password": password, "tags": [SERVICE_USER_TAG]})
            )
            out.written.append(f"user {topo.user}")

        want = {"configure": topo.permissions.configure, "write": topo.permissions.write, "read": topo.permissions.read}
        perms = view.permissions.get(topo.user) or {}
        if any(perms.get(k) != val for k, val in want.items()):
            await self._write("PUT", f"/permissions/{v}/{_q(topo.user)}", want)
            self._record(_put("permissions", topo.user, {"user": topo.user, **want}))
            out.written.append(f"permissions {topo.user}")

        for ex in topo.exchanges:
            live = view.exchanges.get(ex.name)
            if live is None:
                path = f"/exchanges/{v}/{_q(ex.name)}"
                if await self._declare(path, {"type": ex.type, "durable": True}):
                    self._record(_put("exchanges", ex.name, {"name": ex.name, "type": ex.type}))
                    out.written.append(f"exchange {ex.name}")
                    continue
                live = await self._get(path) or {}
            if ex.typed and live.get("type") != ex.type:
                out.conflicts.append(
                    f"exchange {ex.name} exists with type {live.get('type')}, not {ex.type}; exchange types "
                    "cannot change: use another exchange name, or delete the exchange"
                )

        for name in topo.foreign_exchanges:
            # Another namespace's, shared with this one: its owner declares it; bind once it exists.
            if name not in view.exchanges and await self._get(f"/exchanges/{v}/{_q(name)}") is None:
                out.missing.append(name)

        for queue in topo.queues:
            live = view.queues.get(queue.name)
            if live is None:
                path = f"/queues/{v}/{_q(queue.name)}"
                if await self._declare(path, {"durable": True, "arguments": {}}):
                    self._record(
                        _put("queues", queue.name, {"name": queue.name, "arguments": {}, "messages": 0, "consumers": 0})
                    )
                    out.written.append(f"queue {queue.name}")
                    continue
                live = await self._get(path) or {}
            if live.get("arguments"):
                args = ", ".join(f"{k}={val}" for k, val in sorted(live["arguments"].items()))
                out.conflicts.append(
                    f"queue {queue.name} exists with arguments {args}, which RabbitMQ never changes; the "
                    "operator sets these through policies instead. Drain and delete the queue (its messages "
                    "are not touched by the operator) so that it is declared again without arguments"
                )

        for qname in sorted({q.name for q in topo.queues}):
            wanted = {
                (b.exchange, b.routing_key) for b in topo.bindings if b.queue == qname and b.exchange not in out.missing
            }

            def bound(live: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
                return {(b["source"], b["routing_key"]): b for b in live if b.get("source")}

            have = bound(view.bindings.get(qname, []))
            if set(have) - wanted:  # about to unbind: only what the broker holds now
                have = bound(await self._get(f"/queues/{v}/{_q(qname)}/bindings") or [])
            for exchange, key in sorted(wanted - set(have)):
                await self._write("POST", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(qname)}", {"routing_key": key})
                self._record(_bind(qname, exchange, key))
                out.written.append(f"binding {exchange}->{qname} {key!r}")
            for (exchange, key), b in sorted(have.items()):
                if (exchange, key) not in wanted:
                    props = _q(b.get("properties_key", key))
                    await self._write("DELETE", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(qname)}/{props}")
                    self._record(_unbind(qname, exchange, key))
                    out.written.append(f"unbind {exchange}->{qname} {key!r}")

        await self._sync_policies(topo, view, out)
        return out

    async def _declare(self, path: str, body: dict[str, Any]) -> bool:
        """PUT of an exchange or queue: False when one of that name exists in another shape."""
        resp = await self._call("PUT", path, json=body)
        if resp.status_code == 400 and "inequivalent arg" in resp.text:
            return False
        if resp.status_code >= 400:
            raise _failed("PUT", path, resp)
        return True

    async def _sync_policies(self, topo: Topology, view: BrokerView, out: ProvisionResult) -> None:
        v = _q(self.vhost)
        prefix = topo_policy_prefix(topo)
        wanted = {p.name: p for p in topo.policies}
        live = {name: p for name, p in view.policies.items() if name.startswith(prefix)}
        for name, p in wanted.items():
            body = {"pattern": p.pattern, "definition": p.definition, "apply-to": "queues", "priority": 100}
            cur = live.get(name)
            if cur is None or any(cur.get(k) != val for k, val in body.items()):
                await self._write("PUT", f"/policies/{v}/{_q(name)}", body)
                self._record(_put("policies", name, {"name": name, **body}))
                out.written.append(f"policy {name}")
        for name in sorted(set(live) - set(wanted)):
            await self._write("DELETE", f"/policies/{v}/{_q(name)}")  # 404 if gone already: fine
            self._record(_drop("policies", name))
            out.written.append(f"delete policy {name}")

    # --- reading ---------------------------------------------------------------------------------

    async def queue_stats(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Messages and consumers per queue, as of the view (at most read_cache_seconds old)."""
        view = await self.view()
        stats = []
        for name in names:
            live = view.queues.get(name)
            if live is not None:
                stats.append(
                    {
                        "name": name,
                        "messages": int(live.get("messages") or 0),
                        "consumers": int(live.get("consumers") or 0),
                    }
                )
        return stats

    async def queue_exists(self, name: str) -> bool:
        return await self._get(f"/queues/{_q(self.vhost)}/{_q(name)}") is not None

    async def user_exists(self, name: str) -> bool:
        return await self._get(f"/users/{_q(name)}") is not None

    # --- cleanup ---------------------------------------------------------------------------------

    async def deprovision(self, topo: Topology, exchanges: Iterable[str], *, force: bool) -> CleanupResult:
        """Removes the service's queues (only empty ones unless forced), the given exchanges, its
        policies and its user. A queue holding messages is kept, with the policies that route it."""
        out = CleanupResult()
        v = _q(self.vhost)
        kept_queues = set()
        for queue in topo.queues:
            params = None if force else {"if-empty": "true"}
            status = await self._write_allowing("DELETE", f"/queues/{v}/{_q(queue.name)}", params, allow=(400,))
            if status == 400:
                live = await self._get(f"/queues/{v}/{_q(queue.name)}") or {}
                kept_queues.add(queue.name)
                out.kept.append(f"queue {queue.name} ({live.get('messages', '?')} messages)")
                continue
            self._record(_drop("queues", queue.name))
            self._record(_drop("bindings", queue.name))
            if status != 404:
                out.deleted.append(f"queue {queue.name}")
        for policy in topo.policies:
            if policy.queue not in kept_queues:
                await self._write("DELETE", f"/policies/{v}/{_q(policy.name)}")
                self._record(_drop("policies", policy.name))
        for name in exchanges:
            status = await self._write_allowing(
                "DELETE", f"/exchanges/{v}/{_q(name)}", {"if-unused": "true"}, allow=(400,)
            )
            if status == 400:
                out.kept.append(f"exchange {name} (still bound)")
                continue
            self._record(_drop("exchanges", name))
            if status != 404:
                out.deleted.append(f"exchange {name}")
        status = await self._write("DELETE", f"/users/{_q(topo.user)}")
        self._record(_drop("users", topo.user))
        self._record(_drop("permissions", topo.user))
        if status != 404:
            out.deleted.append(f"user {topo.user}")
        return out

    async def release_queues(self, queues: Iterable[str], *, delete: bool, force: bool) -> CleanupResult:
        """Queues a service no longer consumes: every binding to them goes, so they receive
        nothing more; with `delete` they go too (only empty ones unless forced), and then the
        dead-letter and retry exchanges that served them, where nothing is bound to them any more."""
        out = CleanupResult()
        v = _q(self.vhost)
        names = list(queues)
        for name in names:
            for b in await self._get(f"/queues/{v}/{_q(name)}/bindings") or []:
                if not b.get("source"):
                    continue  # the default exchange's implicit binding
                props = _q(b.get("properties_key", b.get("routing_key", "")))
                await self._write("DELETE", f"/bindings/{v}/e/{_q(b['source'])}/q/{_q(name)}/{props}")
                self._record(_unbind(name, b["source"], b.get("routing_key", "")))
            if not delete:
                out.kept.append(f"queue {name} (unbound)")
                continue
            params = None if force else {"if-empty": "true"}
            status = await self._write_allowing("DELETE", f"/queues/{v}/{_q(name)}", params, allow=(400,))
            if status == 400:
                out.kept.append(f"queue {name} (unbound, not empty)")
                continue
            self._record(_drop("queues", name))
            self._record(_drop("bindings", name))
            if status != 404:
                out.deleted.append(f"queue {name}")
        if delete:
            for exchange in sorted({e for name in names for e in _serving_exchanges(name)}):
                status = await self._write_allowing(
                    "DELETE", f"/exchanges/{v}/{_q(exchange)}", {"if-unused": "true"}, allow=(400,)
                )
                if status not in (400, 404):
                    self._record(_drop("exchanges", exchange))
                    out.deleted.append(f"exchange {exchange}")
        return out

    async def delete_user(self, user: str) -> bool:
        """Removes a service's broker user (RabbitMQ closes its connections); False if there was none."""
        status = await self._write("DELETE", f"/users/{_q(user)}")
        self._record(_drop("users", user))
        self._record(_drop("permissions", user))
        return status != 404

    async def service_users(self) -> list[str]:
        """The users the operator made for services (tagged), as listed now."""
        users = await self._get("/users") or []
        return sorted(u["name"] for u in users if is_service_user(u))

    async def _write_allowing(
        self, method: str, path: str, params: dict[str, str] | None, *, allow: tuple[int, ...]
    ) -> int:
        resp = await self._call(method, path, params=params)
        if resp.status_code >= 400 and resp.status_code != 404 and resp.status_code not in allow:
            raise _failed(method, path, resp)
        return resp.status_code


def topo_policy_prefix(topo: Topology) -> str:
    return policy_prefix(topo.user)


def _serving_exchanges(queue: str) -> tuple[str, ...]:
    """The exchanges the operator made to serve a queue: Q.dlx and Q.retry for a main queue Q, Q.dlx
    for its dead-letter queue Q.dlq, the exchange Q.retry for its retry queue Q.retry."""
    if queue.endswith(".dlq"):
        return (dlx_name(queue.removesuffix(".dlq")),)
    if queue.endswith(".retry"):
        return (queue,)
    return (dlx_name(queue), retry_name(queue))


def is_service_user(user: dict[str, Any]) -> bool:
    tags = user.get("tags") or []
    if isinstance(tags, str):  # RabbitMQ before 3.9 lists tags as one comma-separated string
        tags = tags.split(",")
    return SERVICE_USER_TAG in tags


def _failed(method: str, path: str, resp: httpx.Response) -> BrokerUnavailable:
    """The broker refused or failed a call: its answer goes to the log, our words to the caller."""
    log.warning("RabbitMQ %s %s: HTTP %s %s", method, path, resp.status_code, resp.text[:500])
    return BrokerUnavailable(
        f"RabbitMQ answered HTTP {resp.status_code} to {method} {unquote(path)}; the operator's log has its answer"
    )


def _put(part: str, name: str, value: dict[str, Any]) -> Change:
    return lambda view: getattr(view, part).__setitem__(name, value)


def _drop(part: str, name: str) -> Change:
    return lambda view: getattr(view, part).pop(name, None)


def _bind(queue: str, exchange: str, key: str) -> Change:
    binding = {"source": exchange, "destination": queue, "destination_type": "queue", "routing_key": key}
    return lambda view: view.bindings.setdefault(queue, []).append(binding)


def _unbind(queue: str, exchange: str, key: str) -> Change:
    def change(view: BrokerView) -> None:
        view.bindings[queue] = [
            b for b in view.bindings.get(queue, []) if (b.get("source"), b.get("routing_key")) != (exchange, key)
        ]

    return change
