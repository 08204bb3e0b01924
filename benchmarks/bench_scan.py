"""Scan throughput: one capture archive, local and Ray executors, 1 and 2 workers.

The archive is SYNTHETIC: ``--files`` captures (default 20) of ``--packets`` frames
each, built with dpkt by ``bench_detect.write_capture`` (benign MQTT/DNS/ARP/ICMP
chatter among 8 hosts, then SYN, UDP and ICMP floods from single sources, each with
benign background; seed = file number), in 4 nested folders. Nothing here is real
traffic. The model is a real bundle: by default a 19-class DNN trained here for
``--epochs`` epochs on the real CICIoMT2024 v2 sample rows, as ``bench_detect.py``
does, or ``--model RUN_DIR``.

It measures, with the default detect settings (W = 10 and 100, folding, explanations
on, one torch thread per worker) and every capture whole (no chunks: 20 captures are
enough to keep 2 workers busy):

* ``sequential``: :func:`run_detection` over every capture, one after the other, in
  this process (what a loop of ``iomt-ids detect`` costs without the interpreter and
  model start-up);
* ``local``: ``run_scan`` with a process pool of 1 and of 2 workers: ``cold`` (a new
  pool: spawning the workers, importing torch, loading the model, on the clock) and
  ``warm`` (the same pool again);
* ``ray``: the same on a local Ray runtime of 2 CPUs (``RayExecutor(workers=1|2)``),
  after ``ray_startup_s`` (``ray.init`` to the first empty task's result) and the
  per-task overhead (``empty_tasks``: 1,000 empty tasks submitted at once, and 100 one
  after the other, each waited for);
* ``speedup``: 1-worker time / 2-worker time (target >= 1.7);
* ``cpu_s`` of every run (this process, and its descendants: the pool's or Ray's
  processes, from ``/proc``) and ``cpu_estimate``: CPU time hardly depends on other jobs,
  so the workers' CPU seconds with 1 and with 2 workers say what speed-up an idle machine
  gives (``2 * cpu_1 / cpu_2``) when the wall times are drowned in other jobs' load.

Every run's alerts files are compared with the sequential ones (SHA-256): they must be
identical. The machine is shared: the load average is recorded before and after, and
``--wait-load`` waits (up to ``--wait-max`` s) for the 1-minute load to fall below it first.

Usage::

    python benchmarks/bench_scan.py --out benchmarks/results/scan-cpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, RESULTS, load_average, machine, peak_rss_mb, write_result

DATA = "SYNTHETIC captures (dpkt-built frames, bench_detect.write_capture, seeds 0..files-1)"


def wait_for_load(limit: float, max_s: float) -> dict[str, Any]:
    """Wait until the 1-minute load average is below ``limit`` (at most ``max_s`` seconds)."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= limit and time.monotonic() - t0 < max_s:
        time.sleep(15)
    return {
        "limit": limit,
        "waited_s": round(time.monotonic() - t0, 1),
        "reached": os.getloadavg()[0] < limit,
    }


def digests(out: Path) -> dict[str, str]:
    """SHA-256 of every alerts file under ``out/alerts``, by relative path."""
    root = out / "alerts"
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.eve.json"))}  # fmt: skip


def _proc_cpu() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds user + system) of every process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def descendants_cpu() -> float:
    """CPU seconds used so far by the live descendants of this process (pool workers, Ray's processes)."""
    procs = _proc_cpu()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += procs[pid][1]
        todo += children.get(pid, [])
    return total


def timed_scan(config: Any, inputs: list[Path], executor: Any) -> tuple[float, Any, dict[str, float]]:
    """Wall time, result, and CPU seconds of this process and of its descendants during the scan.

    CPU time hardly depends on what else runs on the machine, so it shows the work a run
    needs even when the wall times are noisy.
    """
    from iomt_ids.workflows.scan import run_scan

    self0, kids0 = time.process_time(), descendants_cpu()
    t0 = time.perf_counter()
    result = run_scan(config, inputs, executor=executor)
    wall = time.perf_counter() - t0
    cpu = {"driver": round(time.process_time() - self0, 2), "workers": round(descendants_cpu() - kids0, 2)}
    return wall, result, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--packets", type=int, default=200_000, help="frames per capture")
    ap.add_argument("--model", type=Path, default=None, help="RUN_DIR; default: train a DNN on the v2 sample")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--wait-load", type=float, default=1.5, help="wait for a 1-min load below this first")
    ap.add_argument("--wait-max", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "scan-cpu.json")
    args = ap.parse_args()

    import torch
    from bench_detect import train_sample_bundle, write_capture

    from iomt_ids.detection import DetectConfig, JsonLinesSink, PcapSource, run_detection
    from iomt_ids.detection.site import load_detector
    from iomt_ids.workflows.executors import LocalExecutor, RayExecutor
    from iomt_ids.workflows.scan import ScanConfig

    torch.set_num_threads(1)  # as 'iomt-ids detect' and every scan worker
    tmp = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    archive = tmp / "archive"
    t0 = time.perf_counter()
    captures = []
    for i in range(args.files):
        path = archive / f"ward{i % 4}" / f"cap{i:02d}.pcap"
        path.parent.mkdir(parents=True, exist_ok=True)
        captures.append(
            {"file": path.relative_to(archive).as_posix(), **write_capture(path, args.packets, seed=i)}
        )
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_dir = args.model or train_sample_bundle(tmp / "bundle", args.epochs)
    train_s = None if args.model else round(time.perf_counter() - t0, 1)
    detector = load_detector(model_dir)

    load = wait_for_load(args.wait_load, args.wait_max)
    info = machine("cpu")
    info["commit_full"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    info["uncommitted_changes"] = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    info["wait_for_load"] = load

    # sequential reference: run_detection over each capture in this process
    seq_out = tmp / "sequential"
    seq_cpu0 = time.process_time()
    t0 = time.perf_counter()
    packets = 0
    for c in captures:
        dest = seq_out / "alerts" / f"{c['file']}.eve.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        sink = JsonLinesSink(dest, append=False)
        packets += run_detection(PcapSource(archive / c["file"]), detector, [sink], DetectConfig()).packets
        sink.close()
    seq_s = time.perf_counter() - t0
    reference = digests(seq_out)
    seq_cpu = round(time.process_time() - seq_cpu0, 2)
    runs: dict[str, Any] = {
        "sequential": {
            "s": round(seq_s, 3),
            "packets_per_s": round(packets / seq_s),
            "cpu_s": {"driver": seq_cpu},
        }
    }

    def record(name: str, s: float, result: Any, out: Path, cpu: dict[str, float]) -> dict[str, Any]:
        same = digests(out) == reference
        assert same, f"{name}: alerts differ from the sequential run"
        return {"s": round(s, 3), "packets_per_s": round(packets / s), "cpu_s": cpu,
                "identical_to_sequential": same, "failed": len(result.failed)}  # fmt: skip

    def config(out: Path) -> Any:
        return ScanConfig(model=model_dir, out=out, chunk_packets=0)

    for w in args.workers:
        with LocalExecutor(workers=w) as ex:
            cold, res, cpu = timed_scan(config(tmp / f"local{w}c"), [archive], ex)
            warm, res2, cpu2 = timed_scan(config(tmp / f"local{w}w"), [archive], ex)
        runs[f"local_{w}"] = {"cold": record(f"local {w} cold", cold, res, tmp / f"local{w}c", cpu),
                              "warm": record(f"local {w} warm", warm, res2, tmp / f"local{w}w", cpu2)}  # fmt: skip
        print(f"local {w} worker(s): cold {cold:.2f} s, warm {warm:.2f} s", file=sys.stderr)

    ray_info: dict[str, Any] = {}
    if not args.no_ray:
        import ray

        @ray.remote(num_cpus=1)
        def noop() -> None:
            return None

        t0 = time.perf_counter()
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        ray.get(noop.remote())
        ray_info["startup_s"] = round(time.perf_counter() - t0, 3)
        ray.get([noop.remote() for _ in range(50)])  # warm the worker pool
        t0 = time.perf_counter()
        ray.get([noop.remote() for _ in range(1000)])
        burst = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(100):
            ray.get(noop.remote())
        one_by_one = time.perf_counter() - t0
        ray_info["empty_tasks"] = {
            "burst_1000_s": round(burst, 3),
            "per_task_ms_burst": round(burst, 3),  # 1000 tasks: seconds total == ms per task
            "sequential_100_s": round(one_by_one, 3),
            "round_trip_ms": round(one_by_one * 10, 3),
            "cpus": max(args.workers),
        }
        for w in args.workers:
            ex = RayExecutor(workers=w)
            cold, res, cpu = timed_scan(config(tmp / f"ray{w}c"), [archive], ex)
            warm, res2, cpu2 = timed_scan(config(tmp / f"ray{w}w"), [archive], ex)
            ex.close()
            runs[f"ray_{w}"] = {"cold": record(f"ray {w} cold", cold, res, tmp / f"ray{w}c", cpu),
                                "warm": record(f"ray {w} warm", warm, res2, tmp / f"ray{w}w", cpu2)}  # fmt: skip
            print(f"ray {w} worker(s): cold {cold:.2f} s, warm {warm:.2f} s", file=sys.stderr)
        ray.shutdown()

    speedup: dict[str, Any] = {}
    lo, hi = min(args.workers), max(args.workers)
    for kind in ("local", "ray"):
        if f"{kind}_{lo}" in runs and f"{kind}_{hi}" in runs and lo != hi:
            for when in ("cold", "warm"):
                speedup[f"{kind}_{when}_{hi}_vs_{lo}"] = round(
                    runs[f"{kind}_{lo}"][when]["s"] / runs[f"{kind}_{hi}"][when]["s"], 2
                )
    if "local_1" in runs:
        speedup["local_warm_1_vs_sequential_overhead"] = round(runs["local_1"]["warm"]["s"] / seq_s, 2)
    # what the CPU seconds say an idle machine would do: the workers' work spread over the workers
    # (the driver only collects results and writes files here: no chunks)
    estimate: dict[str, Any] = {}
    for kind in ("local", "ray"):
        one, two = runs.get(f"{kind}_{lo}"), runs.get(f"{kind}_{hi}")
        if one and two and lo != hi:
            c1, c2 = one["warm"]["cpu_s"]["workers"], two["warm"]["cpu_s"]["workers"]
            estimate[kind] = {
                "workers_cpu_s_1": c1,
                "workers_cpu_s_2": c2,
                "cpu_overhead_of_2_workers": round(c2 / c1 - 1, 3) if c1 else None,
                "speedup_if_idle": round(hi * c1 / c2 / lo, 2) if c2 else None,
            }
    target = 1.7
    result = {
        "benchmark": "scan_archive",
        "command": "python benchmarks/bench_scan.py " + " ".join(sys.argv[1:]),
        "data": {
            "description": DATA,
            "files": args.files,
            "packets_per_file": args.packets,
            "packets": packets,
            "bytes": sum(c["bytes"] for c in captures),
            "composition_of_file_0": captures[0]["by_kind"],
            "generate_s": round(gen_s, 1),
        },
        "model": {
            "version": detector.model_version,
            "name": detector.bundle.model_name,
            "task": detector.bundle.task,
            "trained_on": "real CICIoMT2024 v2 sample rows" if args.model is None else str(args.model),
            "train_s": train_s,
        },  # fmt: skip
        "config": {
            "windows": [10, 100],
            "fold_seconds": 60,
            "explain": True,
            "chunk_packets": 0,
            "torch_threads_per_worker": 1,
        },  # fmt: skip
        "runs": runs,
        "ray": ray_info,
        "speedup": speedup,
        "cpu_estimate": estimate,
        "target": {
            "two_vs_one_worker": target,
            "met_local_warm": speedup.get(f"local_warm_{hi}_vs_{lo}", 0) >= target,
            "met_ray_warm": speedup.get(f"ray_warm_{hi}_vs_{lo}", 0) >= target,
        },  # fmt: skip
        "peak_rss_mb_driver": peak_rss_mb(),
        "machine": info,
    }
    result["machine"]["load_average_before_runs"] = info["load_average_start"]
    write_result(result, args.out)
    print(f"load average now {load_average()}", file=sys.stderr)


if __name__ == "__main__":
    main()
