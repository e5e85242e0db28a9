"""The one door to RabbitMQ: AMQP (aio-pika) for exchanges, queues and bindings, the management HTTP
API (httpx) for users, permissions, policies and every read.

Exchanges, queues and bindings are declared over one robust AMQP connection of the operator's
admin user, on a small pool of channels: a declaration there costs the broker a fraction of the
same one through the management API (measured: 1.8 s for a thousand services' topology over AMQP,
against minutes through HTTP). Without an AMQP URL (tests of the management path alone) they go
through the management API, with the same arguments.

Every call reads first and writes only what differs, so a resync that finds the topology in place
sends no write to the broker either. Errors are sorted here: the broker unreachable (or failing)
is `BrokerUnavailable` (retried with back-off); a call the broker refuses for good (a name it
reserves, an argument or definition it rejects: HTTP 400 and the other 4xx, AMQP ACCESS_REFUSED
on an `amq.` name) is `BrokerRefused` (the spec must change; no fast retry); a resource that exists
in a shape we must not change is a conflict that the caller reports in a condition. Every HTTP call
has an overall deadline besides httpx's per-phase timeout: a management API that trickles its
answer is unavailable, not waited on for minutes.

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
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import aio_pika
import aio_pika.exceptions
import httpx
from aiormq.exceptions import ChannelAccessRefused  # aio-pika's own AMQP layer

from platform_operator import observability
from platform_operator.messaging import (
    Policy,
    Queue,
    Topology,
    dlx_name,
    legacy_policy,
    policy_prefix,
    retried_queue,
    retry_name,
)

log = logging.getLogger("platform_operator")


class BrokerError(Exception):
    """Any failed call to RabbitMQ: BrokerUnavailable or BrokerRefused."""


class BrokerUnavailable(BrokerError):
    """The management API could not be reached, refused our credentials, or failed.

    Its message is the operator's own words (it reaches status and Events, which tenants read);
    the broker's answer goes to the operator's log only."""


class BrokerRefused(BrokerError):
    """RabbitMQ refused a call for good: the same call cannot succeed until the spec changes.

    Its message is the operator's own words, as for BrokerUnavailable."""


RESERVED_PREFIX = "amq."


def reserved_names(names: Iterable[str]) -> list[str]:
    """The names RabbitMQ keeps for itself (amq.*): it refuses to declare them for anyone."""
    return sorted({n for n in names if n.startswith(RESERVED_PREFIX)})


def _reserved_refusal(names: Iterable[str]) -> BrokerRefused:
    return BrokerRefused(
        f"RabbitMQ reserves names beginning with {RESERVED_PREFIX!r} and refuses to declare "
        f"{', '.join(sorted(names))}; rename it (the namespace amq gives every name that prefix)"
    )


# An exchange only the operator declares (no dot: no namespace's name). Gone, it tells that the vhost
# was recreated or the broker restarted empty, and that every service's topology must be declared again.
MARKER_EXCHANGE = "platform-operator-marker"


class _Inequivalent(Exception):
    """A declaration RabbitMQ refused: an object of that name exists in another shape."""


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
    _retry_index: dict[str, list[str]] | None = None

    def retry_queues(self, main: str) -> list[str]:
        """The queues named as retry queues of `main` (`main.retry`, `main.retry.<n>s`)."""
        if self._retry_index is None:
            index: dict[str, list[str]] = {}
            for name in self.queues:
                of = retried_queue(name)
                if of is not None:
                    index.setdefault(of, []).append(name)
            self._retry_index = index
        return list(self._retry_index.get(main, []))

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
        deadline: float | None = None,
        read_cache_seconds: float = 5.0,
        max_concurrent_calls: int = 8,
        amqp_url: str = "",
        amqp_channels: int = 4,
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
        self.timeout = timeout
        # httpx's timeout bounds each phase (connect, each read); this bounds the whole call.
        self.deadline = deadline if deadline is not None else 3 * timeout
        self._amqp_url = amqp_url
        self._amqp_size = amqp_channels
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._connecting = asyncio.Lock()
        self._channels: asyncio.Queue[aio_pika.abc.AbstractChannel] = asyncio.Queue()
        # Set when the AMQP connection came back after a loss: the broker may have restarted empty.
        self.reconnected = asyncio.Event()

    async def close(self) -> None:
        await self._http.aclose()
        if self._connection is not None:
            await self._connection.close()

    # --- AMQP ----------------------------------------------------------------------------------------

    @property
    def uses_amqp(self) -> bool:
        return bool(self._amqp_url)

    async def _connect(self) -> None:
        async with self._connecting:
            if self._connection is not None:
                return
            try:
                with observability.outside_call("rabbitmq", "connect"):
                    connection = await asyncio.wait_for(
                        aio_pika.connect_robust(self._amqp_url, reconnect_interval=1, timeout=self.timeout),
                        self.timeout,
                    )
                    for _ in range(self._amqp_size):
                        self._channels.put_nowait(await connection.channel(publisher_confirms=False))
            except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
                log.warning("RabbitMQ AMQP connection: %r", exc)
                raise BrokerUnavailable("RabbitMQ unreachable over AMQP") from exc
            connection.reconnect_callbacks.add(self._on_reconnect)
            self._connection = connection

    def _on_reconnect(self, *_: Any) -> None:
        log.warning("RabbitMQ AMQP connection restored; checking whether the broker lost its topology.")
        self.forget_view()
        self.reconnected.set()

    async def _amqp(self, operation: str, call: Callable[[Any], Any], *names: str) -> None:
        """One declaration on a channel of the pool; a channel RabbitMQ closed is replaced.
        `names`: the exchanges and queues it names, to say which one a refusal is about."""
        if self._connection is None:
            await self._connect()
        connection = self._connection
        if connection is None:  # for mypy: _connect set it or raised
            raise BrokerUnavailable("RabbitMQ unreachable over AMQP")
        channel = await self._channels.get()
        try:
            with observability.outside_call("rabbitmq", operation):
                raw = await asyncio.wait_for(channel.get_underlay_channel(), self.timeout)
                await asyncio.wait_for(call(raw), self.timeout)
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            if "invalid arg" in str(exc):  # an argument the broker rejects, not an object in another shape
                log.warning("RabbitMQ AMQP %s: %r", operation, exc)
                raise BrokerRefused(
                    f"RabbitMQ rejected an argument of the AMQP {operation} of {', '.join(names)}; the operator's "
                    "log has its answer"
                ) from exc
            raise _Inequivalent(str(exc)) from exc
        except ChannelAccessRefused as exc:
            log.warning("RabbitMQ AMQP %s: %r", operation, exc)
            reserved = reserved_names(names)
            if reserved:
                raise _reserved_refusal(reserved) from exc
            raise BrokerRefused(
                f"RabbitMQ refused the operator's AMQP {operation} of {', '.join(names)}; the operator's log "
                "has its answer"
            ) from exc
        except (TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError) as exc:
            log.warning("RabbitMQ AMQP %s: %r", operation, exc)
            raise BrokerUnavailable(f"RabbitMQ refused or dropped an AMQP {operation}") from exc
        finally:
            if channel.is_closed and not connection.is_closed:
                # Failing that, the robust channel reopens itself with the connection.
                with contextlib.suppress(TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError):
                    channel = await connection.channel(publisher_confirms=False)
            self._channels.put_nowait(channel)

    async def _declare_exchange(self, name: str, type_: str) -> bool:
        """False when an exchange of that name exists in another shape."""
        if not self.uses_amqp:
            return await self._declare(f"/exchanges/{_q(self.vhost)}/{_q(name)}", {"type": type_, "durable": True})
        try:
            await self._amqp(
                "exchange.declare",
                lambda ch: ch.exchange_declare(exchange=name, exchange_type=type_, durable=True),
                name,
            )
        except _Inequivalent:
            return False
        return True

    async def _declare_queue(self, queue: Queue) -> bool:
        """False when a queue of that name exists with other arguments."""
        if not self.uses_amqp:
            path = f"/queues/{_q(self.vhost)}/{_q(queue.name)}"
            return await self._declare(path, {"durable": True, "arguments": queue.args})
        try:
            await self._amqp(
                "queue.declare",
                lambda ch: ch.queue_declare(queue=queue.name, durable=True, arguments=queue.args),
                queue.name,
            )
        except _Inequivalent:
            return False
        return True

    async def _bind(self, exchange: str, queue: str, key: str) -> None:
        if not self.uses_amqp:
            v = _q(self.vhost)
            await self._write("POST", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(queue)}", {"routing_key": key})
            return
        try:
            await self._amqp(
                "queue.bind", lambda ch: ch.queue_bind(queue=queue, exchange=exchange, routing_key=key), queue, exchange
            )
        except _Inequivalent as exc:  # not expected for a binding; the caller reports it as an outage
            raise BrokerUnavailable(f"RabbitMQ refused to bind {queue} to {exchange}") from exc

    # --- the marker -----------------------------------------------------------------------------

    async def marker_present(self) -> bool:
        """Whether the vhost still holds the operator's marker (not, after a wipe or an empty restart)."""
        return await self._get(f"/exchanges/{_q(self.vhost)}/{MARKER_EXCHANGE}") is not None

    async def place_marker(self) -> None:
        if not await self._declare_exchange(MARKER_EXCHANGE, "fanout"):
            log.warning("An exchange %s of another type exists; the operator's marker is that one.", MARKER_EXCHANGE)

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One management API call, sorted: an answer under 400 or a 404 is returned (the callers
        read 404 as "not there"); a refusal for good raises BrokerRefused; everything else
        (unreachable, past the deadline, 401, 429, 5xx) raises BrokerUnavailable."""
        try:
            async with self._calls:
                with observability.outside_call("rabbitmq", method):
                    resp = await asyncio.wait_for(
                        self._http.request(method, path, json=json, params=params), self.deadline
                    )
        except TimeoutError as exc:
            log.warning("RabbitMQ %s %s: no answer within %ss", method, path, self.deadline)
            raise BrokerUnavailable(
                f"RabbitMQ management API at {self.base_url} did not answer within {self.deadline:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("RabbitMQ %s %s: %r", method, path, exc)
            raise BrokerUnavailable(
                f"RabbitMQ management API at {self.base_url} unreachable ({type(exc).__name__})"
            ) from exc
        status = resp.status_code
        if status in (401, 403):  # RabbitMQ answers a reserved name with 401 over HTTP
            reserved = reserved_names(_named_in(path))
            if reserved:
                log.warning("RabbitMQ %s %s: HTTP %s %s", method, path, status, resp.text[:500])
                raise _reserved_refusal(reserved)
        if status in (401, 403):
            raise BrokerUnavailable(f"RabbitMQ at {self.base_url} refused the operator's admin credentials")
        if status == 429 or status >= 500:
            raise _failed(method, path, resp)
        return resp

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        resp = await self._call("GET", path, params=params)
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise _refused("GET", path, resp)
        return resp.json()

    async def _write(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> int:
        resp = await self._call(method, path, json=body, params=params)
        if resp.status_code >= 400 and resp.status_code != 404:
            raise _refused(method, path, resp)
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
        view._retry_index = None
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
            self._view._retry_index = None
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
                if await self._declare_exchange(ex.name, ex.type):
                    self._record(_put("exchanges", ex.name, {"name": ex.name, "type": ex.type}))
                    out.written.append(f"exchange {ex.name}")
                    continue
                live = await self._get(f"/exchanges/{v}/{_q(ex.name)}") or {}
            if ex.typed and live.get("type") != ex.type:
                out.conflicts.append(
                    f"exchange {ex.name} exists with type {live.get('type')}, not {ex.type}; exchange types "
                    "cannot change: use another exchange name, or delete the exchange"
                )

        for name in topo.foreign_exchanges:
            # Another namespace's, shared with this one: its owner declares it; bind once it exists.
            if name not in view.exchanges and await self._get(f"/exchanges/{v}/{_q(name)}") is None:
                out.missing.append(name)

        legacy: list[Queue] = []  # declared before arguments were used: their policy does the arguments' work
        for queue in topo.queues:
            live = view.queues.get(queue.name)
            if live is None:
                if await self._declare_queue(queue):
                    self._record(
                        _put(
                            "queues",
                            queue.name,
                            {"name": queue.name, "arguments": queue.args, "messages": 0, "consumers": 0},
                        )
                    )
                    out.written.append(f"queue {queue.name}")
                    continue
                live = await self._get(f"/queues/{v}/{_q(queue.name)}") or {}
            have = dict(live.get("arguments") or {})
            if have == queue.args:
                continue
            if not have:
                legacy.append(queue)
                continue
            args = ", ".join(f"{k}={val}" for k, val in sorted(have.items()))
            ours = ", ".join(f"{k}={val}" for k, val in sorted(queue.args.items())) or "none"
            out.conflicts.append(
                f"queue {queue.name} exists with arguments {args}, not the operator's ({ours}), and RabbitMQ "
                "never changes a queue's arguments. Drain and delete the queue (the operator never deletes it) "
                "so that it is declared again"
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
                await self._bind(exchange, qname, key)
                self._record(_bind(qname, exchange, key))
                out.written.append(f"binding {exchange}->{qname} {key!r}")
            for (exchange, key), b in sorted(have.items()):
                if (exchange, key) not in wanted:
                    props = _q(b.get("properties_key", key))
                    await self._write("DELETE", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(qname)}/{props}")
                    self._record(_unbind(qname, exchange, key))
                    out.written.append(f"unbind {exchange}->{qname} {key!r}")

        await self._retire_retry_queues(topo, view, out)
        await self._sync_policies(topo, view, legacy, out)
        return out

    async def _retire_retry_queues(self, topo: Topology, view: BrokerView, out: ProvisionResult) -> None:
        """Retry queues of an earlier delay (or the older `Q.retry`, dead-lettering by policy) are
        unbound once the current one is bound, so a failed message is retried once; each is deleted
        when empty (its messages still expire back to Q meanwhile, through its own arguments or policy)."""
        v = _q(self.vhost)
        wanted = {q.name for q in topo.queues}
        for main in topo.consumed:
            for name in view.retry_queues(main):
                if name in wanted:
                    continue
                live = view.queues.get(name) or {}
                args = dict(live.get("arguments") or {})
                if args.get("x-dead-letter-routing-key", main) != main or (not args and name != retry_name(main)):
                    continue  # not one the operator made: not ours to retire
                for b in view.bindings.get(name, []):
                    if b.get("source") == retry_name(main):
                        props = _q(b.get("properties_key", b.get("routing_key", "")))
                        await self._write("DELETE", f"/bindings/{v}/e/{_q(retry_name(main))}/q/{_q(name)}/{props}")
                        self._record(_unbind(name, retry_name(main), str(b.get("routing_key", ""))))
                        out.written.append(f"unbind {retry_name(main)}->{name}")
                if int(live.get("messages") or 0) > 0:
                    continue  # draining back to the main queue; deleted by a later reconcile
                status = await self._write_allowing(
                    "DELETE", f"/queues/{v}/{_q(name)}", {"if-empty": "true"}, allow=(400,)
                )
                if status == 400:
                    continue
                self._record(_drop("queues", name))
                self._record(_drop("bindings", name))
                out.written.append(f"delete retired queue {name}")

    async def _declare(self, path: str, body: dict[str, Any]) -> bool:
        """PUT of an exchange or queue: False when one of that name exists in another shape."""
        resp = await self._call("PUT", path, json=body)
        if resp.status_code == 400 and "inequivalent arg" in resp.text:
            return False
        if resp.status_code >= 400:
            raise _refused("PUT", path, resp)
        return True

    async def _sync_policies(self, topo: Topology, view: BrokerView, legacy: list[Queue], out: ProvisionResult) -> None:
        """The policies a service needs: its settings (TTL, max length), plus for a queue declared
        before arguments were used, what its arguments would have said. A policy whose queue is no
        longer wanted is removed only once that queue is gone or empty (it routes its messages)."""
        v = _q(self.vhost)
        prefix = topo_policy_prefix(topo)
        wanted = {p.name: p for p in topo.policies}
        by_queue = {p.queue: p for p in topo.policies}
        for queue in legacy:
            extra = legacy_policy(queue)
            if not extra:
                continue
            settings = by_queue.get(queue.name)
            name = settings.name if settings else prefix + queue.name
            wanted[name] = Policy(name, queue.name, {**extra, **(settings.definition if settings else {})})
        live = {name: p for name, p in view.policies.items() if name.startswith(prefix)}
        for name, p in wanted.items():
            body = {"pattern": p.pattern, "definition": p.definition, "apply-to": "queues", "priority": 100}
            cur = live.get(name)
            if cur is None or any(cur.get(k) != val for k, val in body.items()):
                await self._write("PUT", f"/policies/{v}/{_q(name)}", body)
                self._record(_put("policies", name, {"name": name, **body}))
                out.written.append(f"policy {name}")
        queues = {q.name for q in topo.queues}
        for name in sorted(set(live) - set(wanted)):
            target = name[len(prefix) :]
            held = view.queues.get(target)
            if target not in queues and held is not None and int(held.get("messages") or 0) > 0:
                continue  # a queue the service left still holds messages: its policy still routes them
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
        # Its settings' policies and those of queues declared before arguments were used.
        prefix = topo_policy_prefix(topo)
        listed = {p.name: p.queue for p in topo.policies}
        for name in (await self.view()).policies:
            if name.startswith(prefix):
                listed.setdefault(name, name[len(prefix) :])
        for name, queue_name in sorted(listed.items()):
            if queue_name not in kept_queues:
                await self._write("DELETE", f"/policies/{v}/{_q(name)}")
                self._record(_drop("policies", name))
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
            raise _refused(method, path, resp)
        return resp.status_code


def topo_policy_prefix(topo: Topology) -> str:
    return policy_prefix(topo.user)


def _serving_exchanges(queue: str) -> tuple[str, ...]:
    """The exchanges the operator made to serve a queue: Q.dlx and Q.retry for a main queue Q, Q.dlx
    for its dead-letter queue Q.dlq, the exchange Q.retry for its retry queue Q.retry."""
    if queue.endswith(".dlq"):
        return (dlx_name(queue.removesuffix(".dlq")),)
    main = retried_queue(queue)
    if main is not None:
        return (retry_name(main),)
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


def _refused(method: str, path: str, resp: httpx.Response) -> BrokerRefused:
    """A 4xx other than 401/403/404/429: the broker rejects the call itself (a name, an argument, a
    definition); the same call would be rejected again."""
    log.warning("RabbitMQ %s %s: HTTP %s %s", method, path, resp.status_code, resp.text[:500])
    parts = path.split("?")[0].strip("/").split("/")
    kind = {"policies": "policy", "queues": "queue", "exchanges": "exchange", "bindings": "binding"}.get(
        parts[0], parts[0].removesuffix("s")
    )
    what = " ".join([kind, "/".join(_named_in(path))]).strip()
    return BrokerRefused(
        f"RabbitMQ rejected {method} of {what} (HTTP {resp.status_code}); the operator's log has its answer"
    )


def _named_in(path: str) -> list[str]:
    """The names a management API path holds (after /<kind>/<vhost>/), unquoted."""
    parts = [unquote(p) for p in path.split("?")[0].strip("/").split("/")]
    return parts[2:] if len(parts) > 2 else []


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
