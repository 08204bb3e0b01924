"""The site-adaptation novelty search: the exact k-d tree it uses against comparing every pair.

Why this exists: until commit d7d59bc, ``adaptation/novelty.py`` found each window's k-th
nearest benign reference window by computing the distance to every reference window (blocked
matrix products and a partition). An adapted detector therefore slowed down in proportion to the
size of the site's benign capture. It now asks scipy's exact k-d tree. This script times both on
the same windows and checks that they give the same distances.

Two data sets, one thread:

* ``real``: the **real** CICIoMT2024 v2 sample. The reference is its Benign train rows, and the
  queries are all its test rows (every class, so mostly windows far from the reference).
* ``synthetic``: the W = 10 windows of ``bench_detect``'s **synthetic** captures. The reference is
  a benign-only capture of ``--benign`` packets (seed 1); the queries are the flood capture of
  ``--packets`` packets (seed 0).

    python benchmarks/bench_novelty.py --out benchmarks/results/novelty-cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, both searches
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _common import RESULTS, load_average, machine, write_result  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
_BLOCK = 4096


def all_pairs_kth(x: np.ndarray, ref: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """The search the detector used before: every pair's distance, blocked (the reference point)."""
    out = np.empty(len(x))
    r2 = np.einsum("ij,ij->i", ref, ref, dtype=np.float64)
    kk = min(k + 1 if exclude_self else k, len(ref))
    for s in range(0, len(x), _BLOCK):
        xb = x[s : s + _BLOCK]
        d2 = r2[None, :] - 2.0 * (xb.astype(np.float64) @ ref.T.astype(np.float64))
        d2 += np.einsum("ij,ij->i", xb, xb, dtype=np.float64)[:, None]
        if exclude_self:
            d2[np.arange(len(xb)), np.arange(s, s + len(xb))] = -1.0
        out[s : s + len(xb)] = np.sqrt(np.maximum(np.partition(d2, kk - 1, axis=1)[:, kk - 1], 0.0))
    return out


def measure(name: str, benign: np.ndarray, queries: np.ndarray, data: str) -> dict[str, Any]:
    from iomt_ids.adaptation.novelty import NoveltyModel

    load0 = load_average()
    t0 = time.perf_counter()
    model = NoveltyModel.fit(benign, window=10)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tree = model.score(queries)
    tree_s = time.perf_counter() - t0
    x = model.transform(queries)
    t0 = time.perf_counter()
    pairs = all_pairs_kth(x, model.reference, model.k, exclude_self=False)
    pairs_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loo_pairs = all_pairs_kth(model.reference, model.reference, model.k, exclude_self=True)
    loo_pairs_s = time.perf_counter() - t0
    return {
        "name": name,
        "data": data,
        "reference_windows": len(model.reference),
        "query_windows": len(queries),
        "k": model.k,
        "score": {"kd_tree_s": round(tree_s, 3), "all_pairs_s": round(pairs_s, 3),
                  "speedup": round(pairs_s / tree_s, 1)},
        "fit": {"kd_tree_s_with_leave_one_out": round(fit_s, 3), "all_pairs_leave_one_out_s": round(loo_pairs_s, 3)},
        "max_abs_diff": float(np.abs(tree - pairs).max()),
        "max_abs_diff_leave_one_out": float(np.abs(model.loo_scores - loo_pairs).max()),
        "verdicts_changed": int(((tree > model.threshold) != (pairs > model.threshold)).sum()),
        "load_before": load0,
        "load_after": load_average(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benign", type=int, default=200_000, help="packets of the synthetic benign capture")
    ap.add_argument("--packets", type=int, default=300_000, help="packets of the synthetic flood capture")
    ap.add_argument("--out", type=Path, default=RESULTS / "novelty-cpu.json")
    args = ap.parse_args()
    if not (SAMPLE / "test").is_dir():
        sys.exit(f"bench_novelty: the real sample is missing at {SAMPLE}")
    from bench_detect import write_capture

    from iomt_ids.adaptation.novelty import NOVELTY_COLUMNS
    from iomt_ids.data.loader import find_csv_files, load_csv_files
    from iomt_ids.features.extract import extract_file

    info = machine("cpu")
    runs = []
    train = load_csv_files(find_csv_files(SAMPLE / "train"))
    test = load_csv_files(find_csv_files(SAMPLE / "test"))
    benign = train.table.select(list(NOVELTY_COLUMNS)).to_numpy()[np.asarray(train.labels) == "Benign"]
    queries = test.table.select(list(NOVELTY_COLUMNS)).to_numpy()
    runs.append(
        measure("real", benign, queries, "real CICIoMT2024 v2 sample: Benign train rows vs all test rows")
    )
    with tempfile.TemporaryDirectory(prefix="bench-novelty-") as tmp:
        b, q = Path(tmp) / "benign.pcap", Path(tmp) / "floods.pcap"
        write_capture(b, args.benign, seed=1, benign_only=True)
        write_capture(q, args.packets, seed=0)
        ref_rows, _ = extract_file(b, window=10, progress=False)
        q_rows, _ = extract_file(q, window=10, progress=False)
    runs.append(
        measure(
            "synthetic",
            ref_rows[list(NOVELTY_COLUMNS)].to_numpy(np.float64),
            q_rows[list(NOVELTY_COLUMNS)].to_numpy(np.float64),
            f"SYNTHETIC bench_detect captures, W = 10: benign-only {args.benign:,} packets (seed 1) vs "
            f"floods {args.packets:,} packets (seed 0)",
        )
    )
    for r in runs:
        s = r["score"]
        print(f"{r['name']}: {r['reference_windows']:,} reference, {r['query_windows']:,} queries: k-d tree "
              f"{s['kd_tree_s']} s, all pairs {s['all_pairs_s']} s ({s['speedup']}x); max diff {r['max_abs_diff']:.1e}, "
              f"verdicts changed {r['verdicts_changed']}")  # fmt: skip
    write_result(
        {
            "benchmark": "novelty_search",
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "threads": 1,
            "runs": runs,
            "machine": info,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
