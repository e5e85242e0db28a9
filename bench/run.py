"""`make bench`: the operator at platform scale, against the direct-apply limit in the same run.

For each N it applies N PlatformServices at once (a mix of the four types, with queues and Redis
keys) and measures the time until all are Ready, the operator's peak RSS and CPU seconds, its API
requests by verb (from the API server's audit log) and its RabbitMQ and Redis calls (from its own
metrics). Then the broker recovery: RabbitMQ's vhost and users wiped, the time until every queue
and user is back, every service QueuesReady=True and a message published by one service reaches
its consumer's queue. Then the two direct paths, each alone: the Kubernetes side (the same
children applied straight away, no broker, no Redis) and the broker side (the same topology and
users declared through the adapters, AMQP and the management API, plus the Redis users and keys).
Their sum is the limit. At the largest N it also measures the steady state (writes and CPU per
resync), update-to-Ready latency and churn.

Runs inside hack/with-cluster.sh (KUBECONFIG, PLATFORM_AUDIT_LOG and the servers' PLATFORM_*).
Writes bench/results/results.json, results.md and results.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio

from platform_operator import builders, cache, credentials, messaging
from platform_operator.kube import Kube
from platform_operator.model import PlatformService
from platform_operator.rabbitmq import RabbitMQ
from platform_operator.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
METRICS_PORT, LIVENESS_PORT = 19190, 18190
OPERATOR_AGENTS = ("platform-operator", "kopf")


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {proc.stderr[:500]}")
    return proc.stdout


def spec_for(i: int, ns: str) -> dict[str, Any]:
    """A realistic mix: 40% api, 30% worker, 20% data, 10% polling bots."""
    kind = ("api", "worker", "api", "data", "worker", "api", "worker", "data", "api", "bot")[i % 10]
    spec: dict[str, Any] = {
        "type": kind,
        "image": f"registry.example/svc{i}:1",
        "redis": {"keys": [{"key": "v", "value": "1"}]},
    }
    if kind == "api":
        spec["messaging"] = {"publishes": [{"name": f"{ns}.ev{i % 20}"}]}
        spec["ingress"] = {"host": f"svc{i}.bench.example.com", "rateLimit": {"rps": 50}}
    elif kind == "worker":
        spec["messaging"] = {
            "consumes": [{"queue": f"{ns}.q{i}", "exchange": f"{ns}.ev{i % 20}", "routingKeys": ["#"]}]
        }
    elif kind == "data":
        spec["database"] = {"engine": "postgres", "secretRef": {"name": "db"}}
    else:
        spec["bot"] = {"mode": "polling", "tokenSecretRef": {"name": "token"}}
    return spec


def manifest(n: int, ns: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "platform.dev/v1alpha1",
            "kind": "PlatformService",
            "metadata": {"name": f"svc{i}", "namespace": ns},
            "spec": spec_for(i, ns),
        }
        for i in range(n)
    ]


def apply_all(objs: list[dict[str, Any]]) -> None:
    """Applies the PlatformServices as the direct path applies its children: through the same client,
    16 at a time (kubectl applied them one by one: 55 s for 300 while the operator was at work)."""

    async def run() -> None:
        kube = await Kube.connect()
        sem = asyncio.Semaphore(16)

        async def one(obj: dict[str, Any]) -> None:
            async with sem:
                await kube.apply(obj, field_manager="bench")

        try:
            await asyncio.gather(*(one(o) for o in objs))
        finally:
            await kube.close()

    asyncio.run(run())


def count_ready(ns: str) -> tuple[int, int]:
    items = json.loads(kubectl("get", "psvc", "-n", ns, "-o", "json"))["items"]
    ready = 0
    for o in items:
        conds = {c["type"]: c for c in (o.get("status") or {}).get("conditions") or []}
        gen = o["metadata"]["generation"]
        if conds.get("Ready", {}).get("status") == "True" and o["status"].get("observedGeneration") == gen:
            ready += 1
    return ready, len(items)


def wait_all_ready(ns: str, n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        ready, _ = count_ready(ns)
        if ready == n:
            return time.monotonic() - start
        time.sleep(1)
    raise RuntimeError(f"{ns}: only {count_ready(ns)[0]}/{n} Ready after {timeout}s")


class Operator:
    def __init__(
        self,
        logfile: Path,
        resync: float,
        command: list[str] | None = None,
        start_seconds: float = 60.0,
        **extra_env: str,
    ) -> None:
        env = {
            **os.environ,
            **extra_env,
            "PLATFORM_RESYNC_SECONDS": str(resync),
            "PLATFORM_METRICS_PORT": str(METRICS_PORT),
            "PLATFORM_LIVENESS_PORT": str(LIVENESS_PORT),
            "PLATFORM_STANDALONE": "true",
        }
        for port in (METRICS_PORT, LIVENESS_PORT):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(
                        f"port {port} is taken: an operator of an earlier bench run still running? "
                        "(pkill -f 'python -m platform_operator')"
                    )
        self.out = logfile.open("wb")
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "platform_operator"], env=env, stdout=self.out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + start_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited ({self.proc.returncode}): see {logfile}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{LIVENESS_PORT}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()  # not left running against a cluster that is about to go
        raise RuntimeError(f"the operator did not answer on /healthz within {start_seconds:.0f}s: see {logfile}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def outside_calls(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read().decode()
        calls: Counter[str] = Counter()
        for line in text.splitlines():
            if line.startswith("platform_outside_call_duration_seconds_count{"):
                system = line.split('system="')[1].split('"')[0]
                calls[system] += float(line.rsplit(" ", 1)[1])
        return dict(calls)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


def audit_requests(
    since: float, until: float, namespace: str | None = None, agents: tuple[str, ...] = OPERATOR_AGENTS
) -> Counter[str]:
    """Requests by verb from the audit log, made by the given user agents in the time window."""
    verbs: Counter[str] = Counter()
    path = os.environ.get("PLATFORM_AUDIT_LOG")
    if not path:
        return verbs
    with open(path) as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or not ev.get("userAgent", "").startswith(agents):
                continue
            if namespace and (ev.get("objectRef") or {}).get("namespace") not in (namespace, None):
                continue
            when = datetime.fromisoformat(ev["stageTimestamp"].replace("Z", "+00:00")).timestamp()
            if since <= when <= until:
                verbs[ev["verb"]] += 1
    return verbs


def services(n: int, ns: str) -> list[PlatformService]:
    return [
        PlatformService.from_body(
            {"metadata": {"name": f"svc{i}", "namespace": ns, "uid": ""}, "spec": spec_for(i, ns)}
        )
        for i in range(n)
    ]


def admin_amqp_url() -> str:
    env = os.environ
    return messaging.amqp_url(
        env["PLATFORM_RABBITMQ_ADMIN_USER"],
        env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        env["PLATFORM_RABBITMQ_SERVICE_HOST"],
        int(env["PLATFORM_RABBITMQ_SERVICE_PORT"]),
        env.get("PLATFORM_RABBITMQ_VHOST", "/"),
    )


async def direct_kube(n: int, ns: str) -> dict[str, Any]:
    """The Kubernetes side alone: the same children applied straight away, until every Deployment is ready."""
    kube = await Kube.connect()
    sem = asyncio.Semaphore(16)

    async def one(svc: PlatformService) -> None:
        async with sem:
            settings = builders.secret_settings(svc, rabbitmq_url="amqp://x", redis_url="redis://x")
            objs = [
                builders.build_secret(svc, settings),
                builders.build_deployment(svc, builders.config_hash(settings)),
            ]
            objs += [
                o
                for o in (builders.build_service(svc), builders.build_ingress(svc), builders.build_network_policy(svc))
                if o
            ]
            for obj in objs:
                obj["metadata"].pop("ownerReferences", None)  # no owner object in the direct path
                await kube.apply(obj)

    start = time.monotonic()
    await asyncio.gather(*(one(s) for s in services(n, ns)))
    applied = time.monotonic() - start
    while True:
        deps = json.loads(kubectl("get", "deploy", "-n", ns, "-o", "json"))["items"]
        if sum(1 for d in deps if (d.get("status") or {}).get("readyReplicas") == d["spec"]["replicas"]) >= n:
            break
        await asyncio.sleep(1)
    total = time.monotonic() - start
    await kube.close()
    return {"direct_kube_seconds": round(total, 2), "direct_kube_apply_seconds": round(applied, 2)}


async def direct_broker(n: int, ns: str) -> dict[str, Any]:
    """The broker side alone: topology over AMQP, users and permissions through the management API
    (the fastest found: one by one, in parallel), Redis users and keys; no Kubernetes at all."""
    env = os.environ
    rabbit = RabbitMQ(
        env["PLATFORM_RABBITMQ_MANAGEMENT_URL"],
        env["PLATFORM_RABBITMQ_ADMIN_USER"],
        env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"],
        env.get("PLATFORM_RABBITMQ_VHOST", "/"),
        timeout=60,
        amqp_url=admin_amqp_url(),
    )
    store = RedisStore(env["PLATFORM_REDIS_URL"])
    sem = asyncio.Semaphore(16)

    async def one(svc: PlatformService) -> None:
        async with sem:
            topology, plan = messaging.plan(svc), cache.plan(svc)
            if not topology.empty:
                await rabbit.provision(topology, credentials.new_password())
            await store.ensure_user(plan, credentials.new_password())
            await store.seed(plan)

    svcs = services(n, ns)
    start = time.monotonic()
    # Publishers first: consumers bind to their exchanges (the operator converges in any order).
    await asyncio.gather(*(one(s) for s in svcs if s.spec.type == "api"))
    await asyncio.gather(*(one(s) for s in svcs if s.spec.type != "api"))
    total = time.monotonic() - start
    await rabbit.close()
    await store.close()
    return {"direct_broker_seconds": round(total, 2)}


async def _wipe_rabbitmq() -> int:
    """Deletes the vhost (its queues, exchanges, bindings, policies, permissions) and every user
    but the admin, then gives the admin the vhost again: a broker restarted empty."""
    env = os.environ
    vhost = urllib.parse.quote(env.get("PLATFORM_RABBITMQ_VHOST", "/"), safe="")
    admin = env["PLATFORM_RABBITMQ_ADMIN_USER"]
    auth = (admin, env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"])
    api = env["PLATFORM_RABBITMQ_MANAGEMENT_URL"] + "/api"
    async with httpx.AsyncClient(base_url=api, auth=auth, timeout=300) as mq:
        users = [u["name"] for u in (await mq.get("/users", params={"columns": "name"})).json() if u["name"] != admin]
        (await mq.delete(f"/vhosts/{vhost}")).raise_for_status()
        (await mq.put(f"/vhosts/{vhost}")).raise_for_status()
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        (await mq.put(f"/permissions/{vhost}/{urllib.parse.quote(admin, safe='')}", json=everything)).raise_for_status()
        if users:
            (await mq.post("/users/bulk-delete", json={"users": users})).raise_for_status()
    return len(users)


async def _reset_backends() -> dict[str, int]:
    rabbitmq_users = await _wipe_rabbitmq()
    r = redis.asyncio.from_url(os.environ["PLATFORM_REDIS_URL"])
    try:
        acl_users = [u.decode() for u in await r.execute_command("ACL", "USERS")]  # type: ignore[no-untyped-call]
        dropped = [u for u in acl_users if u != "default"]
        if dropped:
            await r.execute_command("ACL", "DELUSER", *dropped)  # type: ignore[no-untyped-call]
        await r.flushdb()
    finally:
        await r.aclose()
    return {"rabbitmq_users": rabbitmq_users, "redis_users": len(dropped)}


def reset_backends() -> None:
    """Every phase starts from an empty vhost and an empty Redis: what an earlier phase left there
    (services are deleted under deletionPolicy Retain, and the direct path deletes nothing) makes
    RabbitMQ slower with every queue and policy it holds, and would favour whichever phase ran first."""
    dropped = asyncio.run(_reset_backends())
    log(f"backends reset (dropped {dropped['rabbitmq_users']} broker users, {dropped['redis_users']} Redis users)")


def fresh_namespace(name: str) -> None:
    kubectl("create", "namespace", name)
    kubectl("create", "secret", "generic", "db", "-n", name, "--from-literal=dsn=postgresql://x")
    kubectl("create", "secret", "generic", "token", "-n", name, "--from-literal=token=x")


def recovery(ns: str, n: int) -> dict[str, Any]:
    """Wipes RabbitMQ's vhost and users under the running operator; the time until every queue
    and user is back, every service QueuesReady=True, and a message of one service reaches another."""
    svcs = services(n, ns)
    queues = {q for s in svcs for q in messaging.plan(s).queues_in_status}
    users = {messaging.user_name(s) for s in svcs if not messaging.plan(s).empty}
    worker = next(s for s in svcs if s.spec.type == "worker")
    consume = worker.spec.messaging.consumes[0]
    exchange, queue = messaging.exchange_of(worker, consume), messaging.broker_name(ns, consume.queue)
    env = os.environ
    auth = (env["PLATFORM_RABBITMQ_ADMIN_USER"], env["PLATFORM_RABBITMQ_ADMIN_PASSWORD"])
    api = env["PLATFORM_RABBITMQ_MANAGEMENT_URL"] + "/api"
    asyncio.run(_wipe_rabbitmq())
    start = time.monotonic()
    marks: dict[str, float] = {}
    with httpx.Client(base_url=api, auth=auth, timeout=60) as mq:
        while time.monotonic() - start < 600:
            if "broker" not in marks:
                have_q = {q["name"] for q in mq.get("/queues/%2F", params={"columns": "name"}).json()}
                have_u = {u["name"] for u in mq.get("/users", params={"columns": "name"}).json()}
                if queues <= have_q and users <= have_u:
                    marks["broker"] = time.monotonic() - start
            if "broker" in marks and "ready" not in marks:
                items = json.loads(kubectl("get", "psvc", "-n", ns, "-o", "json"))["items"]
                conds = [
                    {c["type"]: c["status"] for c in (o.get("status") or {}).get("conditions") or []} for o in items
                ]
                if all(c.get("QueuesReady") == "True" for c in conds):
                    marks["ready"] = time.monotonic() - start
            if "ready" in marks:
                body = {"properties": {}, "routing_key": "bench", "payload": "recovered", "payload_encoding": "string"}
                routed = mq.post(f"/exchanges/%2F/{urllib.parse.quote(exchange, safe='')}/publish", json=body).json()
                got = mq.post(
                    f"/queues/%2F/{urllib.parse.quote(queue, safe='')}/get",
                    json={"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"},
                ).json()
                if routed.get("routed") and any(m.get("payload") == "recovered" for m in got):
                    marks["message"] = time.monotonic() - start
                    break
            time.sleep(0.5)
        # Every consumer of that exchange got the message: taken out again, or the status of each
        # (its queue's message count) changes at the next resync, inside the steady-state window.
        for s in svcs:
            for c in s.spec.messaging.consumes:
                if messaging.exchange_of(s, c) == exchange:
                    name = urllib.parse.quote(messaging.broker_name(ns, c.queue), safe="")
                    mq.delete(f"/queues/%2F/{name}/contents")
    if "message" not in marks:
        raise RuntimeError(f"{ns}: broker not recovered within 600s ({marks})")
    return {
        "recovery_broker_seconds": round(marks["broker"], 2),
        "recovery_seconds": round(marks["message"], 2),
    }


def measure(n: int, resync: float, steady_seconds: float, churn_seconds: float, workdir: Path) -> dict[str, Any]:
    ns_op, ns_direct = f"bench-op-{n}", f"bench-direct-{n}"
    row: dict[str, Any] = {"n": n}
    # The direct paths first: the churn at the end puts the API server under such load that, on a
    # shared 2-core machine, kube-controller-manager lost its leader lease and exited, after which no
    # Deployment becomes ready and no namespace is deleted.
    reset_backends()
    fresh_namespace(ns_direct)
    log(f"N={n}: the direct path, Kubernetes side alone")
    row.update(asyncio.run(direct_kube(n, ns_direct)))
    kubectl("delete", "namespace", ns_direct, "--wait=true", "--timeout=600s", check=False)
    log(f"N={n}: the direct path, broker side alone")
    row.update(asyncio.run(direct_broker(n, ns_direct)))

    reset_backends()
    fresh_namespace(ns_op)
    op = Operator(workdir / f"operator-{n}.log", resync)
    try:
        cpu0, t0 = op.cpu_seconds(), time.time()
        log(f"N={n}: applying {n} PlatformServices")
        # From the first PlatformService sent: the operator works while the rest are still arriving.
        start = time.monotonic()
        apply_all(manifest(n, ns_op))
        row["operator_apply_seconds"] = round(time.monotonic() - start, 2)
        wait_all_ready(ns_op, n, timeout=max(600, n * 2))
        row["operator_seconds"] = round(time.monotonic() - start, 2)
        t1 = time.time()
        row["operator_cpu_seconds"] = round(op.cpu_seconds() - cpu0, 2)
        row["operator_peak_rss_mb"] = round(op.peak_rss_mb(), 1)
        row["api_requests"] = dict(audit_requests(t0, t1 + 1))
        row["outside_calls"] = op.outside_calls()
        log(f"N={n}: all Ready in {row['operator_seconds']}s, peak RSS {row['operator_peak_rss_mb']} MB")
        log(f"N={n}: broker recovery: RabbitMQ's vhost and users wiped")
        row.update(recovery(ns_op, n))
        log(
            f"N={n}: recovered in {row['recovery_seconds']}s "
            f"(broker side complete at {row['recovery_broker_seconds']}s)"
        )

        if steady_seconds:
            log(f"N={n}: steady state for {steady_seconds:.0f}s")
            time.sleep(resync)  # let the last status writes settle
            s0, c0 = time.time(), op.cpu_seconds()
            time.sleep(steady_seconds)
            writes = audit_requests(s0, time.time())
            row["steady_writes"] = sum(v for k, v in writes.items() if k in ("create", "update", "patch", "delete"))
            row["steady_cpu_seconds_per_resync"] = round((op.cpu_seconds() - c0) / (steady_seconds / resync), 3)

            log(f"N={n}: 20 single spec changes, update-to-Ready")
            latencies = []
            for i in range(20):
                name = f"svc{(i * 7) % n}"
                obj = json.loads(kubectl("get", "psvc", name, "-n", ns_op, "-o", "json"))
                gen, replicas = obj["metadata"]["generation"], obj["spec"]["replicas"]
                start = time.monotonic()
                patch = json.dumps({"spec": {"replicas": 2 if replicas == 1 else 1}})
                kubectl("patch", "psvc", name, "-n", ns_op, "--type=merge", "-p", patch)
                while True:
                    o = json.loads(kubectl("get", "psvc", name, "-n", ns_op, "-o", "json"))
                    conds = {c["type"]: c for c in o["status"].get("conditions", [])}
                    if (
                        o["status"].get("observedGeneration", 0) > gen
                        and conds.get("Ready", {}).get("status") == "True"
                    ):
                        break
                    time.sleep(0.05)
                latencies.append(time.monotonic() - start)
            row["update_to_ready_p50_s"] = round(statistics.median(latencies), 3)
            row["update_to_ready_p95_s"] = round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3)

        if churn_seconds:
            log(f"N={n}: churn, 100 spec updates per second for {churn_seconds:.0f}s")
            row.update(churn(ns_op, n, churn_seconds))
    finally:
        log(f"N={n}: deleting the operator's namespace")
        kubectl(
            "delete", "namespace", ns_op, "--wait=true", f"--timeout={'60s' if churn_seconds else '600s'}", check=False
        )
        op.stop()

    row["direct_seconds"] = round(row["direct_kube_seconds"] + row["direct_broker_seconds"], 2)
    row["ratio"] = round(row["operator_seconds"] / row["direct_seconds"], 2)
    row["seconds_per_service"] = round(row["operator_seconds"] / n, 4)
    log(
        f"N={n}: operator {row['operator_seconds']}s; direct: Kubernetes {row['direct_kube_seconds']}s + broker "
        f"{row['direct_broker_seconds']}s = {row['direct_seconds']}s; ratio {row['ratio']}"
    )
    return row


def churn(ns: str, n: int, seconds: float) -> dict[str, Any]:
    """100 merge patches per second (each a new image tag), sent on that schedule whether or not the
    earlier ones have been answered, then the lag until the operator has observed the last
    generation of every touched service."""

    async def run() -> dict[str, Any]:
        kube = await Kube.connect(max_connections=200)
        sent, pending = 0, []
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            tick = time.monotonic()
            for _ in range(100):
                name = f"svc{sent % n}"
                sent += 1
                body = {"spec": {"image": f"registry.example/{name}:{sent}"}}
                pending.append(
                    asyncio.ensure_future(kube.merge_patch("platform.dev/v1alpha1", "PlatformService", ns, name, body))
                )
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - tick)))
        sending = time.monotonic() - start
        errors, touched = 0, {}
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException) or result is None:
                errors += 1
            else:
                name = result["metadata"]["name"]
                touched[name] = max(touched.get(name, 0), result["metadata"]["generation"])
        end = time.monotonic()
        while True:
            items = json.loads(kubectl("get", "psvc", "-n", ns, "-o", "json"))["items"]
            behind = [
                o
                for o in items
                if o["metadata"]["name"] in touched
                and (o.get("status") or {}).get("observedGeneration", 0) < touched[o["metadata"]["name"]]
            ]
            if not behind:
                break
            await asyncio.sleep(0.5)
        await kube.close()
        return {
            "churn_updates": sent,
            "churn_updates_per_second": round(sent / sending, 1),
            "churn_errors": errors,
            "churn_lag_seconds": round(time.monotonic() - end, 2),
        }

    return asyncio.run(run())


def write(rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| N | operator s (applying) | s/service | direct: Kubernetes s | direct: broker s | direct sum s | ratio | "
        "recovery s (broker side) | peak RSS MB | CPU s | API requests | RabbitMQ calls | Redis calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        api = ", ".join(f"{k} {v}" for k, v in sorted(r.get("api_requests", {}).items()))
        calls = r.get("outside_calls", {})
        lines.append(
            f"| {r['n']} | {r['operator_seconds']} ({r.get('operator_apply_seconds', '-')}) | "
            f"{r['seconds_per_service']} | {r['direct_kube_seconds']} | "
            f"{r['direct_broker_seconds']} | {r['direct_seconds']} | {r['ratio']} | "
            f"{r.get('recovery_seconds', '-')} ({r.get('recovery_broker_seconds', '-')}) | "
            f"{r['operator_peak_rss_mb']} | {r['operator_cpu_seconds']} | {api} | "
            f"{int(calls.get('rabbitmq', 0))} | {int(calls.get('redis', 0))} |"
        )
    big = rows[-1]
    lines += ["", f"At N={big['n']}:", ""]
    for key in (
        "steady_writes",
        "steady_cpu_seconds_per_resync",
        "update_to_ready_p50_s",
        "update_to_ready_p95_s",
        "churn_updates",
        "churn_updates_per_second",
        "churn_errors",
        "churn_lag_seconds",
    ):
        if key in big:
            lines.append(f"- {key}: {big[key]}")
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ns_ = [r["n"] for r in rows]
    ax.plot(ns_, [r["operator_seconds"] for r in rows], "o-", label="operator: all Ready")
    ax.plot(ns_, [r["direct_seconds"] for r in rows], "s--", label="direct: Kubernetes + broker (limit)")
    ax.plot(ns_, [r["direct_kube_seconds"] for r in rows], "^:", label="direct: Kubernetes side alone")
    ax.plot(ns_, [r["direct_broker_seconds"] for r in rows], "v:", label="direct: broker side alone")
    ax.plot(ns_, [r.get("recovery_seconds", 0) for r in rows], "x-.", label="broker recovery after a wipe")
    ax.plot(ns_, [1.3 * r["direct_seconds"] for r in rows], ":", color="grey", label="target: 1.3 x direct")
    for r in rows:
        ax.annotate(f"x{r['ratio']}", (r["n"], r["operator_seconds"]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("PlatformServices applied at once")
    ax.set_ylabel("seconds")
    ax.set_title("Time to Ready: operator vs direct apply")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "results.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000,3000")
    parser.add_argument("--resync", type=float, default=60.0)
    parser.add_argument("--steady", type=float, default=120.0)
    parser.add_argument("--churn", type=float, default=60.0)
    args = parser.parse_args()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/platformservices.platform.dev")
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = RESULTS / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        last = n == sizes[-1]
        rows.append(measure(n, args.resync, args.steady if last else 0, args.churn if last else 0, workdir))
        write(rows)
    log(f"written: {RESULTS / 'results.md'}, results.json, results.png")
    print((RESULTS / "results.md").read_text())


if __name__ == "__main__":
    main()
