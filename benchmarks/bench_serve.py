"""Benchmark: throughput and latency of the scoring service over loopback HTTP.

Starts ``iomt-ids serve`` as a subprocess on a free 127.0.0.1 port (nothing else is
ever contacted), then for each batch size and concurrency level sends JSON (or CSV)
``/v1/predict`` requests from ``concurrency`` asyncio workers on one httpx client.
Every configuration is bounded: a few warm-up requests, then at most ``--requests``
timed requests or ``--seconds`` seconds, whichever ends first. Reports rows/s,
requests/s, p50/p90/p99 latency and the server process's CPU time per configuration
(rows per server CPU-second, a figure that other load on the machine barely moves)
as JSON (stdout and ``--out``).

The load generator runs on the same machine as the server and competes with it for
the CPU cores, so the figures are a lower bound for a dedicated server.

Rows are real CICIoMT2024 v2 sample rows (``../shared/data/ciciomt2024/v2/sample/test``)
when present, else synthetic rows (reported as such). The model is ``--model RUN_DIR``,
or a DNN trained for 2 epochs on a few hundred sample rows: its accuracy is
irrelevant here, its architecture and input size are those of a real bundle.

    python benchmarks/bench_serve.py --batch-sizes 1,32,256,1024 --concurrency 1,4,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "ciciomt2024" / "v2" / "sample"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_rows(n: int, seed: int) -> tuple[pd.DataFrame, list[str], str]:
    from iomt_ids.data.labels import parse_file_name

    files = sorted((SAMPLE / "test").glob("*.pcap.csv"))
    if files:
        per_file = max(1, math.ceil(n / len(files)))
        parts = [pd.read_csv(f, nrows=per_file) for f in files]
        labels = [parse_file_name(f).label for f, p in zip(files, parts, strict=True) for _ in range(len(p))]
        frame = pd.concat(parts, ignore_index=True)
        return frame, labels, f"real CICIoMT2024 v2 sample ({SAMPLE / 'test'}), {per_file} rows per file"
    from iomt_ids.data.labels import STEM_TO_CLASS19
    from iomt_ids.features.schema import V2_COLUMNS

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(np.abs(rng.normal(50, 20, size=(n, len(V2_COLUMNS)))), columns=list(V2_COLUMNS))
    classes = list(STEM_TO_CLASS19.values())
    return frame, [classes[i % len(classes)] for i in range(n)], "SYNTHETIC rows (shared sample absent)"


def _json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    def cell(v: float) -> Any:
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return float(v)

    return [{c: cell(float(v)) for c, v in row.items()} for row in frame.to_dict(orient="records")]


def _bodies(frame: pd.DataFrame, batch: int, fmt: str) -> list[bytes]:
    """A few distinct bodies of ``batch`` rows, cycled through by the workers."""
    out = []
    rows = _json_rows(frame) if fmt == "json" else None
    for k in range(4):
        idx = [(k * batch + i) % len(frame) for i in range(batch)]
        if fmt == "json":
            assert rows is not None
            out.append(json.dumps({"rows": [rows[i] for i in idx]}, allow_nan=False).encode())
        else:
            out.append(frame.iloc[idx].to_csv(index=False).encode())
    return out


async def _run_config(
    url: str,
    bodies: list[bytes],
    fmt: str,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: int,
) -> dict[str, Any]:
    import httpx

    headers = {"Content-Type": "application/json" if fmt == "json" else "text/csv"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        for i in range(warmup):
            r = await client.post("/v1/predict", content=bodies[i % len(bodies)])
            r.raise_for_status()
        latencies: list[float] = []
        errors = 0
        issued = 0
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                r = await client.post("/v1/predict", content=body)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    lat_ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "latency_ms": {
            "p50": round(float(np.percentile(lat_ms, 50)), 2),
            "p90": round(float(np.percentile(lat_ms, 90)), 2),
            "p99": round(float(np.percentile(lat_ms, 99)), 2),
            "mean": round(float(lat_ms.mean()), 2),
        },
    }


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "device": "cpu",
    }


def _start_server(model_dir: Path, port: int, max_rows: int, threads: int) -> subprocess.Popen[str]:
    env = {**os.environ, "IOMT_IDS_MAX_ROWS": str(max_rows), "IOMT_IDS_MAX_BODY_BYTES": str(64 * 1024 * 1024)}
    env.pop("IOMT_IDS_API_KEY", None)
    cmd = [
        sys.executable, "-c", "from iomt_ids.cli import main; main()", "serve",
        "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--torch-threads", str(threads),
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"server not ready after {timeout} s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="RUN_DIR of a trained bundle (default: train a tiny DNN)")
    p.add_argument("--arch", default="dnn", help="architecture of the tiny model when --model is not given")
    p.add_argument("--batch-sizes", default="1,32,256,1024")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--requests", type=int, default=300, help="most timed requests per configuration")
    p.add_argument("--seconds", type=float, default=8.0, help="most timed seconds per configuration")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--torch-threads", type=int, default=1, help="passed to iomt-ids serve --torch-threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve-cpu.json")
    args = p.parse_args(argv)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    levels = [int(x) for x in args.concurrency.split(",")]
    if args.requests > 10_000 or args.seconds > 120:
        raise SystemExit("keep the benchmark bounded: --requests <= 10000 and --seconds <= 120")

    load_before = os.getloadavg()
    frame, labels, data_note = _load_rows(max(512, max(batch_sizes)), args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if args.model is None:
            from iomt_ids.workflows import fit_bundle

            bundle, _ = fit_bundle(
                frame, labels, task=6, model=args.arch, epochs=2, seed=args.seed, device="cpu"
            )
            model_dir = bundle.save(Path(tmp) / "bundle")
            model_note = f"{args.arch}, task 6, trained 2 epochs on {len(frame)} rows (speed only)"
        else:
            model_dir = args.model
            model_note = str(args.model)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _start_server(model_dir, port, max(batch_sizes), args.torch_threads)
        try:
            _wait_ready(url, proc)
            import httpx

            info = httpx.get(f"{url}/v1/model", timeout=5).json()
            results = []
            for batch in batch_sizes:
                bodies = _bodies(frame, batch, args.format)
                for conc in levels:
                    cpu0 = _cpu_seconds(proc.pid)
                    res = asyncio.run(
                        _run_config(url, bodies, args.format, conc, args.requests, args.seconds, args.warmup)
                    )
                    cpu1 = _cpu_seconds(proc.pid)
                    res = {"batch_size": batch, "concurrency": conc, "body_bytes": len(bodies[0]), **res}
                    res["rows_per_s"] = round(res["requests_per_s"] * batch, 1)
                    if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
                        # Includes the warm-up requests; robust to other load on the machine.
                        served = (res["requests"] + args.warmup) * batch
                        res["server_cpu_s"] = round(cpu1 - cpu0, 2)
                        res["rows_per_server_cpu_s"] = round(served / (cpu1 - cpu0), 1)
                    results.append(res)
                    print(
                        f"batch {batch:5d} conc {conc:3d}: {res['rows_per_s']:10.1f} rows/s "
                        f"({res.get('rows_per_server_cpu_s', float('nan')):9.1f} rows/server-CPU-s) "
                        f"{res['requests_per_s']:8.1f} req/s  p50 {res['latency_ms']['p50']:8.2f} ms "
                        f"p99 {res['latency_ms']['p99']:8.2f} ms  errors {res['errors']}",
                        file=sys.stderr,
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    report = {
        "benchmark": "serve",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "model": {"name": info["name"], "version": info["version"], "task": info["task"], "note": model_note},
        "data": data_note,
        "format": args.format,
        "transport": "HTTP/1.1 over loopback (127.0.0.1), httpx.AsyncClient, keep-alive; one uvicorn worker",
        "server_torch_threads": args.torch_threads,
        "bounds": {"max_requests": args.requests, "max_seconds": args.seconds, "warmup": args.warmup},
        "note": "load generator shares the machine's cores with the server; other processes may too (see load_average)",
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "seed": args.seed,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
