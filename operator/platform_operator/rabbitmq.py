"""The one door to RabbitMQ: its management HTTP API, through httpx.

Every call reads first and writes only what differs, so a resync that finds the topology in place
sends no write to the broker either. Errors are sorted here: the broker unreachable (or failing)
is `BrokerUnavailable`; a resource that exists in a shape we must not change is a conflict that
the caller reports in a condition.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from platform_operator import observability
from platform_operator.messaging import Topology


class BrokerUnavailable(Exception):
    """The management API could not be reached, refused our credentials, or failed."""


@dataclass
class ProvisionResult:
    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


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


class RabbitMQ:
    def __init__(self, base_url: str, user: str, password: str, vhost: str, *, timeout: float = 5.0) -> None:
        self.vhost = vhost
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url + "/api", auth=(user, password), timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            with observability.outside_call("rabbitmq", method):
                resp = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"RabbitMQ management API at {self.base_url} unreachable: {exc!r}") from exc
        if resp.status_code in (401, 403):
            raise BrokerUnavailable(f"RabbitMQ at {self.base_url} refused the operator's admin credentials")
        if resp.status_code >= 500:
            raise BrokerUnavailable(f"RabbitMQ at {self.base_url} failed: HTTP {resp.status_code} {resp.text[:200]}")
        return resp

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        resp = await self._call("GET", path, params=params)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    async def _write(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> int:
        resp = await self._call(method, path, json=body, params=params)
        if resp.status_code >= 400 and resp.status_code != 404:
            raise BrokerUnavailable(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.status_code

    # --- provisioning ----------------------------------------------------------------------------

    async def provision(self, topo: Topology, password: str) -> ProvisionResult:
        out = ProvisionResult()
        v = _q(self.vhost)
        user = await self._get(f"/users/{_q(topo.user)}")
        if user is None or not password_matches(
            user.get("password_hash", ""), password, user.get("hashing_algorithm", "")
        ):
            await self._write("PUT", f"/users/{_q(topo.user)}", {"password": password, "tags": ""})
            out.written.append(f"user {topo.user}")

        perms = await self._get(f"/permissions/{v}/{_q(topo.user)}")
        want = {"configure": topo.permissions.configure, "write": topo.permissions.write, "read": topo.permissions.read}
        if perms is None or any(perms.get(k) != val for k, val in want.items()):
            await self._write("PUT", f"/permissions/{v}/{_q(topo.user)}", want)
            out.written.append(f"permissions {topo.user}")

        for ex in topo.exchanges:
            live = await self._get(f"/exchanges/{v}/{_q(ex.name)}")
            if live is None:
                await self._write("PUT", f"/exchanges/{v}/{_q(ex.name)}", {"type": ex.type, "durable": True})
                out.written.append(f"exchange {ex.name}")
            elif live.get("type") != ex.type and ex.type != "topic":
                out.conflicts.append(
                    f"exchange {ex.name} exists with type {live.get('type')}, not {ex.type}; exchange types "
                    "cannot change: use another exchange name, or delete the exchange"
                )

        for queue in topo.queues:
            live = await self._get(f"/queues/{v}/{_q(queue.name)}")
            if live is None:
                await self._write("PUT", f"/queues/{v}/{_q(queue.name)}", {"durable": True, "arguments": {}})
                out.written.append(f"queue {queue.name}")
            elif live.get("arguments"):
                args = ", ".join(f"{k}={val}" for k, val in sorted(live["arguments"].items()))
                out.conflicts.append(
                    f"queue {queue.name} exists with arguments {args}, which RabbitMQ never changes; the "
                    "operator sets these through policies instead. Drain and delete the queue (its messages "
                    "are not touched by the operator) so that it is declared again without arguments"
                )

        for qname in sorted({b.queue for b in topo.bindings}):
            wanted = {(b.exchange, b.routing_key) for b in topo.bindings if b.queue == qname}
            live_bindings = await self._get(f"/queues/{v}/{_q(qname)}/bindings") or []
            have = {(b["source"], b["routing_key"]): b for b in live_bindings if b.get("source")}
            for exchange, key in sorted(wanted - set(have)):
                await self._write("POST", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(qname)}", {"routing_key": key})
                out.written.append(f"binding {exchange}->{qname} {key!r}")
            for (exchange, key), b in sorted(have.items()):
                if (exchange, key) not in wanted:
                    props = _q(b.get("properties_key", key))
                    await self._write("DELETE", f"/bindings/{v}/e/{_q(exchange)}/q/{_q(qname)}/{props}")
                    out.written.append(f"unbind {exchange}->{qname} {key!r}")

        await self._sync_policies(topo, out)
        return out

    async def _sync_policies(self, topo: Topology, out: ProvisionResult) -> None:
        v = _q(self.vhost)
        wanted = {p.name: p for p in topo.policies}
        live_all = await self._get(f"/policies/{v}") or []
        prefix = topo_policy_prefix(topo)
        live = {p["name"]: p for p in live_all if p["name"].startswith(prefix)}
        for name, p in wanted.items():
            body = {"pattern": p.pattern, "definition": p.definition, "apply-to": "queues", "priority": 100}
            cur = live.get(name)
            if cur is None or any(cur.get(k) != val for k, val in body.items()):
                await self._write("PUT", f"/policies/{v}/{_q(name)}", body)
                out.written.append(f"policy {name}")
        for name in sorted(set(live) - set(wanted)):
            await self._write("DELETE", f"/policies/{v}/{_q(name)}")
            out.written.append(f"delete policy {name}")

    # --- reading ---------------------------------------------------------------------------------

    async def queue_stats(self, names: Iterable[str]) -> list[dict[str, Any]]:
        v = _q(self.vhost)
        stats = []
        for name in names:
            live = await self._get(f"/queues/{v}/{_q(name)}", params={"columns": "name,messages,consumers"})
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
            elif status != 404:
                out.deleted.append(f"queue {queue.name}")
        for policy in topo.policies:
            if policy.queue not in kept_queues:
                await self._write("DELETE", f"/policies/{v}/{_q(policy.name)}")
        for name in exchanges:
            status = await self._write_allowing(
                "DELETE", f"/exchanges/{v}/{_q(name)}", {"if-unused": "true"}, allow=(400,)
            )
            if status == 400:
                out.kept.append(f"exchange {name} (still bound)")
            elif status != 404:
                out.deleted.append(f"exchange {name}")
        if await self._write("DELETE", f"/users/{_q(topo.user)}") != 404:
            out.deleted.append(f"user {topo.user}")
        return out

    async def _write_allowing(
        self, method: str, path: str, params: dict[str, str] | None, *, allow: tuple[int, ...]
    ) -> int:
        resp = await self._call(method, path, params=params)
        if resp.status_code >= 400 and resp.status_code != 404 and resp.status_code not in allow:
            raise BrokerUnavailable(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.status_code


def topo_policy_prefix(topo: Topology) -> str:
    """Policies of one service share the prefix platform.<namespace>.<name>. (the user name is ns.name)."""
    return f"platform.{topo.user}."
