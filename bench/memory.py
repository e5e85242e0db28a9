"""`make bench-memory`: where the operator's memory goes, at rest and with N services.

Runs the operator (the same `python -m platform_operator`, under tracemalloc) against the
servers of hack/with-cluster.sh, takes a snapshot of its Python allocations at rest (no
service), applies the same N PlatformServices as `make bench`, waits until all are Ready and the
writes have settled, and takes a second snapshot. Writes bench/results/memory-profile.md: the
process's RSS at both points, what tracemalloc sees, the growth per service, and the files and
lines that hold the growth. tracemalloc slows the operator and costs memory of its own: read the
RSS figures of `make bench`, and this file for the shares.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from run import RESULTS, Operator, apply_all, fresh_namespace, kubectl, log, manifest, reset_backends, wait_all_ready

# Starts tracemalloc before anything is imported, and writes a snapshot on SIGUSR1.
WRAPPER = """
import os, runpy, signal, sys, tracemalloc
tracemalloc.start(int(os.environ.get("BENCH_TRACE_FRAMES", "1")))
def snapshot(signum, frame):
    path = os.environ["BENCH_SNAPSHOT"]
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, snapshot)
sys.argv = ["platform_operator"]
runpy.run_module("platform_operator", run_name="__main__", alter_sys=True)
"""

IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
)


# Ports of its own: `make bench` may run at the same time on its own cluster.
run.METRICS_PORT, run.LIVENESS_PORT = 19191, 18191


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1]) / 1024
    return out


def take(op: Operator, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(op.proc.pid, signal.SIGUSR1)
    for _ in range(600):
        if path.exists():
            return tracemalloc.Snapshot.load(str(path)).filter_traces(IGNORED)
        time.sleep(0.5)
    raise RuntimeError("the operator wrote no snapshot within 300s")


def short(filename: str) -> str:
    for marker in ("site-packages/", "/operator/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after all Ready before the snapshot")
    args = parser.parse_args()
    n, ns = args.n, f"bench-memory-{args.n}"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(Path(__file__).resolve().parents[1] / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/platformservices.platform.dev")
    workdir = RESULTS / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    snap_path = workdir / "memory.snapshot"
    reset_backends()
    fresh_namespace(ns)
    op = Operator(
        workdir / f"operator-memory-{n}.log",
        60.0,
        command=[sys.executable, "-c", WRAPPER],
        start_seconds=300,  # imports under tracemalloc are several times slower
        BENCH_SNAPSHOT=str(snap_path),
    )
    try:
        time.sleep(10)
        at_rest, rest_rss = take(op, snap_path), rss_mb(op.proc.pid)
        log(f"at rest: RSS {rest_rss['VmRSS']:.0f} MB; applying {n} PlatformServices (under tracemalloc)")
        apply_all(manifest(n, ns))
        seconds = wait_all_ready(ns, n, timeout=max(900, n * 3))
        log(f"all {n} Ready in {seconds:.0f}s; settling {args.settle:.0f}s")
        time.sleep(args.settle)
        loaded, loaded_rss = take(op, snap_path), rss_mb(op.proc.pid)
    finally:
        op.stop()
        kubectl("delete", "namespace", ns, "--wait=false", check=False)

    traced0 = sum(s.size for s in at_rest.statistics("filename"))
    traced1 = sum(s.size for s in loaded.statistics("filename"))
    mb = 1024 * 1024
    grown = loaded_rss["VmRSS"] - rest_rss["VmRSS"]
    lines = [
        f"# Operator memory with {n} services (`make bench-memory`)",
        "",
        "| | at rest | with N Ready | growth | per service |",
        "|---|---|---|---|---|",
        f"| RSS (VmRSS) MB | {rest_rss['VmRSS']:.1f} | {loaded_rss['VmRSS']:.1f} | "
        f"{grown:.1f} | {grown * 1024 / n:.1f} KB |",
        f"| peak RSS (VmHWM) MB | {rest_rss['VmHWM']:.1f} | {loaded_rss['VmHWM']:.1f} | | |",
        f"| Python allocations (tracemalloc) MB | {traced0 / mb:.1f} | {traced1 / mb:.1f} | "
        f"{(traced1 - traced0) / mb:.1f} | {(traced1 - traced0) / 1024 / n:.1f} KB |",
        "",
        "The RSS rows include tracemalloc's own bookkeeping (a traceback record for every live block):",
        "they are not the operator's footprint, which `make bench` measures",
        "untraced (its peak RSS column). Read the Python allocations, and the shares below.",
        "",
        "## Growth by file (the 20 largest)",
        "",
        "| file | MB now | growth MB | growth per service KB | blocks |",
        "|---|---|---|---|---|",
    ]
    for stat in loaded.compare_to(at_rest, "filename")[:20]:
        name = short(stat.traceback[0].filename)
        lines.append(
            f"| {name} | {stat.size / mb:.2f} | {stat.size_diff / mb:+.2f} | {stat.size_diff / 1024 / n:+.2f} | "
            f"{stat.count_diff:+d} |"
        )
    lines += ["", "## Growth by line (the 25 largest)", "", "| line | growth MB | blocks |", "|---|---|---|"]
    for stat in loaded.compare_to(at_rest, "lineno")[:25]:
        frame = stat.traceback[0]
        lines.append(f"| {short(frame.filename)}:{frame.lineno} | {stat.size_diff / mb:+.2f} | {stat.count_diff:+d} |")
    lines += ["", "## At rest, by file (the 10 largest)", "", "| file | MB |", "|---|---|"]
    for stat in at_rest.statistics("filename")[:10]:
        lines.append(f"| {short(stat.traceback[0].filename)} | {stat.size / mb:.2f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "memory-profile.md"
    out.write_text("\n".join(lines) + "\n")
    snap_path.unlink(missing_ok=True)
    log(f"written: {out}")
    print(out.read_text())


if __name__ == "__main__":
    main()
