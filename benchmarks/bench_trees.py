"""Tree scoring backends, measured side by side in one run: which one ``predict_proba`` should use.

Models: a 19-class LightGBM and a random forest trained here with the pipeline's settings
(:data:`~iomt_ids.models.trees.LIGHTGBM_PARAMS`, :data:`~iomt_ids.models.trees.RANDOM_FOREST_PARAMS`)
on the **real** CICIoMT2024 v2 sample train rows (``../shared/data/ciciomt2024/v2/sample/train``).
Rows scored: the sample's **test** rows (real), resampled with replacement (seed 0) to
``--rows`` (default 1 M) and preprocessed once (float32, what the estimators receive).

Backends (estimator level: preprocessed rows in, probabilities out):

* ``lightgbm_predict``: ``Booster.predict`` (LightGBM's own; the same thread count);
* ``compiled``: :mod:`iomt_ids.models.compiled` (the table kernel), 1 and N threads;
* ``code``: :mod:`iomt_ids.models.codegen` (branch code compiled when the bundle is saved; what
  ``predict_proba`` uses from 256 rows), 1 and N threads; the save time with its compile is recorded;
* ``onnxruntime_onnxmltools``: LightGBM converted by onnxmltools (``TreeEnsembleClassifier``, float32);
* ``onnxruntime_export``: our export (:mod:`iomt_ids.export.trees`, float64 tree operators, preprocessing
  folded in: raw rows in), through :class:`~iomt_ids.export.onnx.OnnxScorer`;
* ``treelite_gtil``: treelite's interpreter (on fewer rows: it is slow);
* ``lleaves``: LLVM code per tree; recorded as unavailable when it does not build here;
* forest: the NumPy traversal (``native``) against ``compiled`` and ONNX Runtime.

Also: one-row latency (p50/p99 over ``--latency-calls`` calls, estimator and bundle level),
parity (max abs difference, classes changed), and the block sizes of the kernel (``--tune``).
The machine is shared: every ratio is taken within this run, the load average is recorded
before and after each measurement, and rows per CPU-second are given beside wall-clock rates.

    python benchmarks/bench_trees.py --out benchmarks/results/trees-cpu.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    REPO,
    RESULTS,
    cpu_seconds,
    load_average,
    machine,
    one_row_latency,
    peak_rss_mb,
    write_result,
)

SAMPLE = REPO / ".." / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
TARGET_SPEEDUP = 10.0
TARGET_P99_MS = 0.2


def timed(name: str, fn: Any, n: int, **extra: Any) -> dict[str, Any]:
    """One timed call of ``fn`` (``n`` rows), wall and CPU seconds, load before and after."""
    fn_warm = extra.pop("warm", None)
    if fn_warm is not None:
        fn_warm()
    load0 = load_average()
    c0, t0 = cpu_seconds(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rec = {
        "backend": name,
        "rows": n,
        "seconds": round(wall, 3),
        "rows_per_s": round(n / wall),
        "rows_per_cpu_s": round(n / cpu) if cpu > 0 else None,
        "load_before": load0,
        "load_after": load_average(),
        **extra,
    }
    print(f"  {name}: {rec['rows_per_s']:,} rows/s ({n:,} rows, {wall:.1f} s)", file=sys.stderr)
    rec["_out"] = out
    return rec


def parity(got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return {
        "max_abs_diff": float(np.abs(got - ref).max()),
        "classes_changed": int((got.argmax(1) != ref.argmax(1)).sum()),
    }


def latency(fn: Any, rows: np.ndarray, calls: int) -> dict[str, Any]:
    return one_row_latency(fn, rows, calls, warmup=50)


def strip(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def lleaves_status(model_file: Path) -> str:
    """Whether lleaves compiles the model here (in a subprocess with a time limit); the error if not."""
    code = "import lleaves, sys; m = lleaves.Model(model_file=sys.argv[1]); m.compile(); print('ok')"
    try:
        res = subprocess.run([sys.executable, "-c", code, str(model_file)], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "did not finish compiling within 120 s"
    if res.returncode == 0:
        return "ok"
    return (res.stderr.strip().splitlines() or ["failed"])[-1][:300]


def train(model: str, rows_per_file: int | None) -> Any:
    from iomt_ids.data.loader import find_csv_files, load_csv_files
    from iomt_ids.workflows import fit_bundle

    data = load_csv_files(find_csv_files(SAMPLE / "train"))
    frame = data.table.to_pandas()
    labels = data.labels
    t0 = time.perf_counter()
    bundle, history = fit_bundle(frame, labels, task=19, model=model, preset="paper", device="cpu")
    return bundle, history, time.perf_counter() - t0, len(frame)


def tune(tables: Any, x: np.ndarray) -> list[dict[str, Any]]:
    from iomt_ids.models import compiled

    out = []
    saved = compiled.ROW_BLOCK, compiled.TREE_BLOCK
    try:
        for rb in (1024, 4096, 16384):
            for tb in (4, 8, 16, 32):
                compiled.ROW_BLOCK, compiled.TREE_BLOCK = rb, tb
                tables.raw_scores(x[:2000])
                c0, t0 = cpu_seconds(), time.perf_counter()
                tables.raw_scores(x, 1)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                out.append({"row_block": rb, "tree_block": tb, "rows_per_s": round(len(x) / wall),
                            "rows_per_cpu_s": round(len(x) / cpu)})  # fmt: skip
                print(f"  tune rb={rb} tb={tb}: {out[-1]['rows_per_cpu_s']:,} rows/cpu-s", file=sys.stderr)
    finally:
        compiled.ROW_BLOCK, compiled.TREE_BLOCK = saved
    return out


def bench_lightgbm(args: argparse.Namespace, raw: np.ndarray, tmp: Path, threads: int) -> dict[str, Any]:
    from iomt_ids.export.onnx import OnnxScorer, export_onnx

    print("lightgbm: training on the sample ...", file=sys.stderr)
    bundle, history, train_s, n_train = train("lightgbm", None)
    t0 = time.perf_counter()
    run = bundle.save(tmp / "lightgbm")  # builds the tables and compiles the branch code (models/codegen.py)
    save_s = time.perf_counter() - t0
    est = bundle.estimator
    code = est.branch_code
    booster = est.booster
    x = bundle.transform(raw)
    x64 = x.astype(np.float64)
    n = len(x)
    t0 = time.perf_counter()
    tables = est._build_tables()
    build_s = time.perf_counter() - t0
    res: dict[str, Any] = {
        "model": {
            "classes": 19, "train_rows": n_train, "train_s": round(train_s, 1), "rounds_kept": est.n_trees,
            "trees": tables.n_trees, "nodes": tables.n_nodes, "version": bundle.version,
            "compile_s": round(build_s, 3),
            "save_with_branch_code_s": round(save_s, 1),
            "branch_code": None if code is None else {"objects": code.n_objects},
        },
    }  # fmt: skip
    runs = []
    print(f"lightgbm: scoring {n:,} rows ...", file=sys.stderr)
    native = timed("lightgbm_predict", lambda: booster.predict(x64, num_threads=threads), n, threads=threads,
                   warm=lambda: booster.predict(x64[:1000], num_threads=threads))  # fmt: skip
    runs.append(native)
    ref = native["_out"]
    for t in sorted({1, threads}):
        rec = timed(f"compiled_{t}t", lambda t=t: tables.predict_proba(x, t), n, threads=t,
                    warm=lambda t=t: tables.predict_proba(x[:5000], t))  # fmt: skip
        rec.update(parity(rec["_out"], ref))
        runs.append(rec)
    for t in sorted({1, threads}) if code is not None else ():
        rec = timed(f"code_{t}t", lambda t=t: tables.probabilities(code.raw_scores(x, t)), n, threads=t,
                    warm=lambda t=t: code.raw_scores(x[:5000], t))  # fmt: skip
        rec.update(parity(rec["_out"], ref))
        runs.append(rec)
    if args.compare_native_1t and threads != 1:
        runs.append(timed("lightgbm_predict_1t", lambda: booster.predict(x64[: n // 4], num_threads=1), n // 4,
                          threads=1))  # fmt: skip
    # ONNX Runtime: onnxmltools' converter (float32 tree operator) and our export (raw rows, float64)
    try:
        import onnxruntime as ort
        from onnxmltools.convert import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = convert_lightgbm(booster, initial_types=[("x", FloatTensorType([None, x.shape[1]]))], zipmap=False,
                               target_opset=15)  # fmt: skip
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
        prob_name = sess.get_outputs()[1].name
        m = min(n, args.slow_rows)
        rec = timed("onnxruntime_onnxmltools", lambda: sess.run([prob_name], {"x": x[:m]})[0], m, threads=threads,
                    warm=lambda: sess.run([prob_name], {"x": x[:1000]}))  # fmt: skip
        rec.update(parity(rec["_out"], ref[:m]))
        runs.append(rec)
    except Exception as exc:  # a converter or runtime that is missing or fails
        runs.append(
            {"backend": "onnxruntime_onnxmltools", "unavailable": f"{type(exc).__name__}: {exc}"[:300]}
        )
    path = export_onnx(run, run / "model.onnx")
    scorer = OnnxScorer(path, bundle, threads=threads)
    m = min(n, args.slow_rows)
    rec = timed("onnxruntime_export_raw_rows", lambda: scorer.predict_proba_matrix(raw[:m]), m, threads=threads,
                warm=lambda: scorer.predict_proba_matrix(raw[:1000]))  # fmt: skip
    rec.update(parity(rec["_out"], ref[:m]))
    rec["note"] = "includes the folded preprocessing (raw rows in), unlike the estimator-level rows above"
    runs.append(rec)
    try:
        import treelite

        tm = treelite.frontend.from_lightgbm(booster)
        m = min(n, args.slow_rows // 10)
        rec = timed(
            "treelite_gtil", lambda: treelite.gtil.predict(tm, x[:m], nthread=threads), m, threads=threads
        )
        rec.update(parity(np.asarray(rec["_out"]).reshape(m, -1), ref[:m]))
        runs.append(rec)
    except Exception as exc:
        runs.append({"backend": "treelite_gtil", "unavailable": f"{type(exc).__name__}: {exc}"[:300]})
    runs.append({"backend": "lleaves", "status": lleaves_status(run / "lightgbm.txt")})
    # bundle level (raw rows: NumPy preprocessing + estimator), what predict/detect/serve call
    m = min(n, args.slow_rows)
    for backend in ("native", "compiled"):
        est.use_backend(backend)
        rec = timed(f"bundle_{backend}_raw_rows", lambda: bundle.predict_proba(raw[:m]), m, threads=threads)
        runs.append(rec)
    est.use_backend("auto")
    res["runs"] = [strip(r) for r in runs]
    by = {r["backend"]: r for r in runs if "rows_per_s" in r}
    best = max(
        (r for r in runs if r["backend"].startswith(("compiled_", "code_"))), key=lambda r: r["rows_per_s"]
    )
    res["speedup_vs_lightgbm_predict"] = {
        r["backend"]: round(r["rows_per_s"] / native["rows_per_s"], 2) for r in runs if "rows_per_s" in r
    }
    # what predict_proba's auto backend scores a large batch with: the branch code where it was compiled
    shipped = f"code_{threads}t" if code is not None else f"compiled_{threads}t"
    res["shipped_batch_path"] = shipped
    res["speedup_same_threads"] = round(by[shipped]["rows_per_s"] / native["rows_per_s"], 2)
    # robustness of the ratio: alternate the two on 100 k rows, 3 times each
    k = min(n, 100_000)
    alt = []
    for _ in range(3):
        a = timed(
            "lightgbm_predict", lambda: booster.predict(x64[:k], num_threads=threads), k, threads=threads
        )
        b = timed("compiled", lambda: est.predict_proba(x[:k]), k, threads=threads)  # auto: code, else tables
        alt.append(round(b["rows_per_s"] / a["rows_per_s"], 2))
    res["speedup_alternating_100k"] = alt
    # one-row latency
    est.use_backend("compiled")
    lat = {
        "compiled_estimator": latency(est.predict_proba, x, args.latency_calls),
        "compiled_bundle_raw_row": latency(bundle.predict_proba, raw, args.latency_calls),
    }
    est.use_backend("native")
    lat["lightgbm_estimator"] = latency(est.predict_proba, x, args.latency_calls // 5)
    est.use_backend("auto")
    lat["onnxruntime_export_raw_row"] = latency(scorer.predict_proba_matrix, raw, args.latency_calls // 5)
    res["one_row_latency"] = lat
    res["targets"] = {
        "speedup": TARGET_SPEEDUP,
        "measured_speedup_same_threads": res["speedup_same_threads"],
        "measured_speedup_best_compiled": round(best["rows_per_s"] / native["rows_per_s"], 2),
        "meets_speedup": res["speedup_same_threads"] >= TARGET_SPEEDUP,
        "p99_ms": TARGET_P99_MS,
        "measured_p99_ms_estimator": lat["compiled_estimator"]["p99_ms"],
        "measured_p99_ms_bundle": lat["compiled_bundle_raw_row"]["p99_ms"],
        "meets_p99_estimator": lat["compiled_estimator"]["p99_ms"] <= TARGET_P99_MS,
        "meets_p99_bundle": lat["compiled_bundle_raw_row"]["p99_ms"] <= TARGET_P99_MS,
    }
    if args.tune:
        res["tune_blocks_1t"] = tune(tables, x[: min(n, 200_000)])
    return res


def bench_forest(args: argparse.Namespace, raw: np.ndarray, tmp: Path, threads: int) -> dict[str, Any]:
    from iomt_ids.export.onnx import OnnxScorer, export_onnx

    print("random_forest: training on the sample ...", file=sys.stderr)
    bundle, _, train_s, n_train = train("random_forest", None)
    run = bundle.save(tmp / "random_forest")
    est = bundle.estimator
    x = bundle.transform(raw)
    t0 = time.perf_counter()
    tables = est._build_tables()
    build_s = time.perf_counter() - t0
    m = min(len(x), args.forest_rows)
    res: dict[str, Any] = {
        "model": {"classes": 19, "train_rows": n_train, "train_s": round(train_s, 1), "trees": tables.n_trees,
                  "nodes": tables.n_nodes, "compile_s": round(build_s, 3)},
    }  # fmt: skip
    runs = []
    native = timed("numpy_native", lambda: est._native_proba(x[:m]), m, threads=1)
    runs.append(native)
    for t in sorted({1, threads}):
        rec = timed(f"compiled_{t}t", lambda t=t: tables.predict_proba(x[:m], t), m, threads=t,
                    warm=lambda t=t: tables.predict_proba(x[:2000], t))  # fmt: skip
        rec.update(parity(rec["_out"], native["_out"]))
        runs.append(rec)
    path = export_onnx(run, run / "model.onnx")
    scorer = OnnxScorer(path, bundle, threads=threads)
    k = min(m, args.slow_rows // 4)
    rec = timed("onnxruntime_export_raw_rows", lambda: scorer.predict_proba_matrix(raw[:k]), k, threads=threads,
                warm=lambda: scorer.predict_proba_matrix(raw[:500]))  # fmt: skip
    rec.update(parity(rec["_out"], native["_out"][:k]))
    runs.append(rec)
    res["runs"] = [strip(r) for r in runs]
    res["speedup_vs_numpy"] = {
        r["backend"]: round(r["rows_per_s"] / native["rows_per_s"], 2) for r in runs if "rows_per_s" in r
    }
    est.use_backend("compiled")
    res["one_row_latency"] = {"compiled_estimator": latency(est.predict_proba, x, args.latency_calls // 2)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="test rows after resampling")
    ap.add_argument("--slow-rows", type=int, default=200_000, help="rows for the slow ONNX/bundle runs")
    ap.add_argument("--forest-rows", type=int, default=200_000)
    ap.add_argument("--latency-calls", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=0, help="0: the thread policy's choice at start")
    ap.add_argument("--models", nargs="+", default=["lightgbm", "random_forest"])
    ap.add_argument("--compare-native-1t", action="store_true")
    ap.add_argument("--tune", action="store_true", help="also time the kernel's row/tree block sizes")
    ap.add_argument("--out", type=Path, default=RESULTS / "trees-cpu.json")
    args = ap.parse_args()
    if not (SAMPLE / "test").is_dir():
        sys.exit(f"bench_trees: the real sample is missing at {SAMPLE}")

    os.environ.setdefault("IOMT_IDS_CACHE_DIR", tempfile.mkdtemp(prefix="bench-trees-cache-"))
    from iomt_ids.data.loader import find_csv_files, load_csv_files
    from iomt_ids.runtime import apply_thread_policy

    policy = apply_thread_policy(args.threads or None)
    threads = policy.threads
    info = machine("cpu")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())  # fmt: skip
    test = load_csv_files(find_csv_files(SAMPLE / "test"))
    cols = list(test.columns)
    pool = test.table.select(cols).to_numpy()
    raw = pool[np.random.default_rng(0).integers(0, len(pool), args.rows)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-trees-"))
    result: dict[str, Any] = {
        "benchmark": "tree_scoring_backends",
        "command": "python " + " ".join([str(Path(sys.argv[0]).as_posix()), *sys.argv[1:]]),
        "git_commit": commit,
        "worktree_dirty": dirty,
        "data": {
            "train": "real CICIoMT2024 v2 sample, train split (../shared/data/ciciomt2024/v2/sample/train), all rows",
            "scored": f"real CICIoMT2024 v2 sample, test split: {len(pool):,} rows resampled with replacement "
            f"(seed 0) to {args.rows:,}",
        },
        "threads": {"policy": policy.describe(), "threads": threads, "usable_cpus": policy.usable_cpus},
        "cpu": info["cpu"],
        "cores": info["cores"],
        "load_average_start": load_average(),
    }
    for model in args.models:
        result[model] = (bench_lightgbm if model == "lightgbm" else bench_forest)(args, raw, tmp, threads)
    result["choice"] = (
        "predict_proba's auto backend: branch code (models/codegen.py) for batches of 256 rows and more where "
        "this machine compiled it (at save, or 'iomt-ids compile'; its object files are loaded only with a trust "
        "record this machine wrote), else the table kernel (models/compiled.py: LLVM IR compiled in memory, "
        "cache = data tables, trust-checked); the native model for rows neither scores exactly"
    )
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"] = info
    write_result(result, args.out)


if __name__ == "__main__":
    main()
