"""The operator under stress: two replicas, a SIGKILL in the middle of a batch."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis
from e2e_kube import Operator, OperatorProcess, apply, condition, eventually, get, kubectl, psvc, reachable, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def reconciled(op: OperatorProcess, mark: int, ns: str, name: str) -> bool:
    return f"Reconciled {ns}/{name}:" in op.log_since(mark)


def test_two_replicas_exactly_one_acts_and_the_other_takes_over(ns: str, operator: Operator):
    if not isinstance(operator, OperatorProcess) or operator.kubeconfig is None:
        pytest.skip("needs the local operator running as the chart runs it (kopf peering)")
    standby = OperatorProcess(operator.log_path.with_name("standby.log"), kubeconfig=operator.kubeconfig, priority=50)
    standby.start()
    try:
        a0, b0 = operator.log_mark(), standby.log_mark()
        apply(psvc("one", type="worker", image="example/w:1"), ns)
        wait_ready("one", ns)
        time.sleep(3)
        assert reconciled(operator, a0, ns, "one")
        assert not reconciled(standby, b0, ns, "one"), "the standby replica acted while the leader was alive"

        operator.stop()  # the leader leaves; the standby takes over
        b1 = standby.log_mark()
        apply(psvc("one", type="worker", image="example/w:2"), ns)
        obj = eventually(
            lambda: (o := get("psvc", "one", ns)) and o["status"].get("observedGeneration") == 2 and o,
            timeout=60,
            what="the standby to take over and follow the update",
        )
        assert condition(obj, "Ready")["status"] in ("True", "False")
        # The status is patched before the reconcile logs its line: give the line its moment.
        eventually(lambda: reconciled(standby, b1, ns, "one"), timeout=10, what="the standby's reconcile in its log")
    finally:
        operator.start()  # the leader returns (higher priority): the standby pauses, then leaves
        standby.stop()


def test_sigkill_in_the_middle_of_a_batch_converges_without_duplicates(ns: str, operator: Operator):
    if not isinstance(operator, OperatorProcess):
        pytest.skip("kills the local operator process")
    names = [f"svc{i}" for i in range(8)]
    for name in names:
        apply(psvc(name, type="worker", image="example/w:1",
                   messaging={"consumes": [{"queue": f"{ns}.{name}", "exchange": f"{ns}.ev"}]}), ns)  # fmt: skip
    time.sleep(0.7)
    operator.kill()
    operator.start()
    for name in names:
        wait_ready(name, ns, timeout=120)

    mq = httpx.Client(
        base_url=os.environ["PLATFORM_RABBITMQ_MANAGEMENT_URL"] + "/api",
        auth=(os.environ["PLATFORM_RABBITMQ_ADMIN_USER"], os.environ["PLATFORM_RABBITMQ_ADMIN_PASSWORD"]),
    )
    users = [u["name"] for u in mq.get("/users").json() if u["name"].startswith(f"{ns}.")]
    assert sorted(users) == sorted(f"{ns}.{n}" for n in names)
    queues = [q["name"] for q in mq.get("/queues/%2F").json() if q["name"].startswith(f"{ns}.")]
    assert len(queues) == len(names) * 3 and len(set(queues)) == len(queues)  # queue, .retry, .dlq
    admin = redis.Redis.from_url(
        os.environ["PLATFORM_REDIS_URL"],
        password=os.environ.get("PLATFORM_REDIS_ADMIN_PASSWORD") or None,
        decode_responses=True,
    )
    assert sorted(u for u in admin.acl_users() if u.startswith(f"{ns}.")) == sorted(f"{ns}.{n}" for n in names)
    # Each Secret holds the password its users really have: none was regenerated behind its back.
    for name in names:
        data = get("secret", f"{name}-platform", ns)["data"]
        assert redis.Redis.from_url(reachable(base64.b64decode(data["REDIS_URL"]).decode())).ping() is True
    mq.close()
    admin.close()


def test_api_server_restart_watches_resume_and_nothing_is_missed(ns: str, operator: Operator):
    cluster = os.environ.get("CLUSTER_NAME")
    if not isinstance(operator, OperatorProcess) or not cluster:
        pytest.skip("restarts the local control plane (kwokctl)")
    apply(psvc("before", type="api", image="example/a:1"), ns)
    wait_ready("before", ns)

    # Every component stops for a few seconds: the operator's watches and calls fail meanwhile.
    subprocess.run([str(ROOT / "hack" / "cluster.sh"), "restart"], check=True, capture_output=True, timeout=300)
    eventually(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0, timeout=90, what="readyz")

    # Changes after the restart reach the operator through its resumed watches.
    apply(psvc("before", type="api", image="example/a:2"), ns)
    apply(psvc("after", type="worker", image="example/b:1"), ns)
    # The operator's part (pods turning Ready is kwok's, which restarted too and may lag).
    observed = eventually(
        lambda: (o := get("psvc", "after", ns)) and o.get("status", {}).get("observedGeneration") == 1 and o,
        timeout=120,
        what="the PlatformService created after the restart to be observed",
    )
    assert {c["type"] for c in observed["status"]["conditions"]} >= {"Ready", "DeploymentReady"}
    assert get("deployment", "after", ns) is not None
    updated = eventually(
        lambda: (
            (d := get("deployment", "before", ns))
            and d["spec"]["template"]["spec"]["containers"][0]["image"] == "example/a:2"
            and d
        ),
        timeout=120,
        what="the update made after the restart",
    )
    assert updated
    assert operator.proc is not None and operator.proc.poll() is None, "the operator died with the API server"
