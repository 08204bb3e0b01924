"""Benchmark: reading the CICIoMT2024 CSV file set, ours vs plain pandas / polars, and from our cache.

Generates a full-size SYNTHETIC file set once (``benchmarks/synth.py``: 72 files
named as in the release, 8.77 M rows at ``--scale 1``; never real data) under
``--dir`` (default ``/tmp/iomt-synth/<release>``, outside the repository), then
times, each in a fresh child process so that its peak RSS is its own:

* ``pandas``: ``pandas.read_csv`` per file + ``pandas.concat`` (labels from names);
* ``polars``: ``polars.read_csv`` per file + ``polars.concat``;
* ``ours``: :func:`iomt_ids.data.loader.load_dataset` (cache off);
* ``ours_cache_cold``: the same with ``cache=DIR`` on an empty cache (read + write);
* ``ours_cache``: the same again, served from the memory-mapped Arrow cache.

and, unless ``--no-preprocess``, "preprocess": the training rows (for ``ours`` the loaded
polars table, read block by block as the training pipeline does; for pandas/polars a
float64 matrix) and :class:`~iomt_ids.data.preprocess.Preprocessor` ``fit_transform`` (cleaning policy,
zero-variance filter, scaling -> float32) on train and ``transform`` on test, timed
after each load. The CSV files sit in the OS page cache (warm) for every method.

    python benchmarks/bench_load.py --out benchmarks/results/load-cpu.json
    python benchmarks/bench_load.py --quick            # 10 % of the rows
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, peak_rss_mb, write_result

METHODS = ("ours", "ours_cache_cold", "ours_cache", "polars", "pandas")


def _cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process has used: a load-independent cost."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _labels_of(files: list[Path], counts: list[int]) -> Any:
    import numpy as np

    from iomt_ids.data.labels import parse_file_name

    return np.repeat(np.array([parse_file_name(f).label for f in files], dtype=object), counts)


def _preprocess(train: Any, test: Any, release: str) -> dict[str, float]:
    """Train/test rows (float64 matrices, or polars tables read block by block) -> Preprocessor -> float32."""
    import numpy as np
    import polars as pl

    from iomt_ids.data.preprocess import Preprocessor
    from iomt_ids.features.schema import columns_for

    t0 = time.perf_counter()
    x_tr = train if isinstance(train, pl.DataFrame) else np.asarray(train, dtype=np.float64)
    x_te = test if isinstance(test, pl.DataFrame) else np.asarray(test, dtype=np.float64)
    pre = Preprocessor(input_columns=columns_for(release))
    z_tr = pre.fit_transform(x_tr, "train")
    del x_tr
    z_te = pre.transform(x_te, "test")
    return {
        "preprocess_s": round(time.perf_counter() - t0, 3),
        "model_input_mb": (z_tr.nbytes + z_te.nbytes) / 2**20,
    }


def worker(method: str, root: Path, cache: Path, preprocess: bool) -> dict[str, Any]:
    """Run one method in this process; return its timings and peak RSS."""
    import numpy as np
    import pandas as pd
    import polars as pl

    from iomt_ids.data.loader import load_dataset
    from iomt_ids.features.schema import columns_for, detect_release

    out: dict[str, Any] = {"method": method}
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    if method.startswith("ours"):
        splits = load_dataset(root, cache=cache if "cache" in method else False)
        rows = len(splits.train) + len(splits.test)
        release = splits.train.release
        load_s = time.perf_counter() - t0
        out["load_s"] = round(load_s, 3)
        out["load_cpu_s"] = round(_cpu_s() - cpu0, 3)
        out["peak_rss_mb_load"] = peak_rss_mb()
        if preprocess:
            # as the training pipeline does: the Preprocessor reads the loaded table block by block
            out.update(_preprocess(splits.train.table, splits.test.table, release))
    else:
        parts: dict[str, Any] = {}
        for split in ("train", "test"):
            files = sorted((root / split).glob("*.pcap.csv"))
            if method == "pandas":
                frames = [pd.read_csv(f) for f in files]
                frame = pd.concat(frames, ignore_index=True)
            else:
                frames = [pl.read_csv(f, infer_schema_length=10_000) for f in files]
                frame = pl.concat(frames, how="vertical_relaxed")
            labels = _labels_of(files, [len(f) for f in frames])
            del frames
            parts[split] = (frame, labels)
        release = detect_release(list(parts["train"][0].columns))
        rows = sum(len(f) for f, _ in parts.values())
        out["load_s"] = round(time.perf_counter() - t0, 3)
        out["load_cpu_s"] = round(_cpu_s() - cpu0, 3)
        out["peak_rss_mb_load"] = peak_rss_mb()
        if preprocess:
            cols = list(columns_for(release))
            mats = [
                (f[cols].to_numpy(dtype=np.float64) if method == "pandas" else f.select(cols).to_numpy())
                for f, _ in parts.values()
            ]
            del parts
            out.update(_preprocess(mats[0], mats[1], release))
    out["rows"] = rows
    out["total_s"] = round(time.perf_counter() - t0, 3)
    out["peak_rss_mb"] = peak_rss_mb()
    out["float32_data_mb"] = round(rows * len(columns_for(release)) * 4 / 2**20, 1)
    out["peak_over_float32"] = round(out["peak_rss_mb"] / out["float32_data_mb"], 2)
    out["peak_load_over_float32"] = round(out["peak_rss_mb_load"] / out["float32_data_mb"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", choices=("v1", "v2"), default="v2")
    ap.add_argument("--scale", type=float, default=1.0, help="share of the release's 8.77 M rows")
    ap.add_argument("--dir", type=Path, default=None, help="where the synthetic files go (not the repo)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--no-preprocess", action="store_true")
    ap.add_argument("--quick", action="store_true", help="--scale 0.1")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.scale = 0.1
    root = args.dir or Path(
        f"/tmp/iomt-synth/{args.release}" + ("" if args.scale == 1.0 else f"-{args.scale:g}")
    )
    if args.worker:
        print(json.dumps(worker(args.worker, root, args.cache_dir, not args.no_preprocess)))
        return

    import synth

    t0 = time.perf_counter()
    gen = synth.generate(root, args.release, args.scale)
    gen_s = time.perf_counter() - t0
    # make "warm page cache" true for the first method too: flush fresh writes, read every file once
    os.sync()
    for path in sorted(root.glob("*/*.pcap.csv")):
        with path.open("rb") as fh:
            while fh.read(1 << 24):
                pass
    cache = root.parent / f"{root.name}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    result: dict[str, Any] = {
        "benchmark": "bench_load",
        "machine": machine(),
        "data": {
            "kind": "SYNTHETIC (benchmarks/synth.py); not real traffic",
            "release": args.release,
            "dir": str(root),
            "rows": gen["rows"],
            "files": gen["files"],
            "csv_bytes": gen["bytes"],
            "csv_gb": round(gen["bytes"] / 1e9, 2),
            "generation_s": round(gen_s, 1),
            "page_cache": "warm (files read before, RAM holds them)",
        },
        "settings": {k: str(v) for k, v in vars(args).items()},
        "methods": {},
    }
    for method in args.methods.split(","):
        cmd = [sys.executable, __file__, "--worker", method, "--dir", str(root), "--cache-dir", str(cache)]
        if args.no_preprocess:
            cmd.append("--no-preprocess")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            result["methods"][method] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        result["methods"][method] = json.loads(proc.stdout.strip().splitlines()[-1])
    cache_bytes = sum(p.stat().st_size for p in cache.glob("*")) if cache.exists() else 0
    result["cache_bytes"] = cache_bytes
    shutil.rmtree(cache, ignore_errors=True)
    ours, pandas = result["methods"].get("ours", {}), result["methods"].get("pandas", {})
    if "load_s" in ours and "load_s" in pandas:
        result["speedup_load_vs_pandas"] = round(pandas["load_s"] / ours["load_s"], 2)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
