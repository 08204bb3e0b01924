"""Helpers shared by bench_load / bench_train / bench_infer: machine facts, timers, JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))

from iomt_ids.runtime import cpu_model, git_commit  # noqa: E402  (re-exported: benchmarks import it from here)


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (other processes share the cores)."""
    return [round(v, 2) for v in os.getloadavg()]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("iomt-ids", "torch", "numpy", "polars", "pandas", "pyarrow", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine(device: str = "cpu") -> dict[str, Any]:
    """Where the benchmark ran: CPU model and cores, GPU when used, load average, versions, commit."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "load_average_start": load_average(),
        "load_note": "other agents' jobs share these cores; see load_average_start/end",
        "versions": versions(),
    }
    commit = git_commit(REPO)
    if commit is not None:
        info["commit"] = commit
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def sync(device: str) -> None:
    """Wait for queued GPU work before reading a clock."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def one_row_latency(
    fn: Callable[[Any], Any], rows: Any, calls: int, warmup: int = 20, device: str = "cpu"
) -> dict[str, Any]:
    """Latency of ``fn`` on one row at a time (rows cycled), after ``warmup`` calls: p50, p99, mean, max in ms."""
    import numpy as np

    for i in range(warmup):
        fn(rows[i % len(rows) : i % len(rows) + 1])
    times = np.empty(calls)
    for i in range(calls):
        row = rows[i % len(rows) : i % len(rows) + 1]
        t0 = time.perf_counter()
        fn(row)
        sync(device)
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "calls": calls,
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "max_ms": round(float(ms.max()), 3),
    }


def timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def write_result(result: dict[str, Any], out: Path | None) -> None:
    """Print the JSON and write it to ``out`` when given."""
    result.setdefault("machine", {})["load_average_end"] = load_average()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def synthetic_matrix(n: int, seed: int = 0, release: str = "v2") -> tuple[Any, Any]:
    """``n`` synthetic raw rows (float64, release columns) and 19-class labels, in memory."""
    import numpy as np
    import synth

    from iomt_ids.data.labels import STEM_TO_CLASS19

    rng = np.random.default_rng(seed)
    pool = synth.sample_rows()
    labels = sorted(set(STEM_TO_CLASS19.values()))
    weights = np.array([sum(synth.TABLE1[lab]) for lab in labels], dtype=np.float64)
    y = rng.choice(len(labels), size=n, p=weights / weights.sum())
    x = np.empty((n, len(synth.V2_COLUMNS)))
    for k, lab in enumerate(labels):
        idx = np.flatnonzero(y == k)
        if idx.size:
            src = pool[lab]
            x[idx] = synth.perturb(src[rng.integers(0, len(src), idx.size)], rng)
    if release == "v1":
        x = synth.to_v1(x, rng)
    return x, np.asarray(labels, dtype=object)[y]


def cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) used by this process so far.

    On a shared machine wall-clock rates depend on other jobs; rows per CPU-second
    depend much less on them (spinning threads still count), so both are reported.
    """
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
