"""Code-generated trees (lleaves-style LLVM branch code) against the shipped table-walking kernel.

Why this exists: ``models/compiled.py`` scores trees with one *generic* kernel that walks compact
node tables; its docstring says lleaves (one LLVM function of branch code per tree, thresholds and
leaf values as immediates) had not finished compiling our model after 6 CPU-minutes. This benchmark
asks the two questions again with our own generator: how much faster is branch code, and what does
it cost to compile, at each LLVM optimisation level?

* :func:`codegen_ir` writes each tree as nested ``fcmp ogt float %x, <threshold>`` / ``br`` blocks;
  a leaf adds its value (an exact float64 immediate) to ``out[row, tree_out[t]]``. Trees are grouped
  ``trees_per_fn`` to a function; a driver loops over blocks of rows times blocks of functions (rows
  outer inside a block of trees, as the shipped kernel tiles), calling them through a table.
* Compiling: parse + verify, the new pass manager's ``O<level>`` pipeline, machine code at the same
  codegen level (``TargetMachine.emit_object``, what MCJIT runs inside ``finalize_object``), in a
  forked child so that a compile over ``--compile-timeout`` seconds is stopped and recorded as such.
  The parent loads the object into an MCJIT engine (``add_object_file`` + ``finalize_object``; timed
  as ``load_s`` and counted in ``compile_s``).
* Scoring: every variant's raw scores must equal ``TreeTables.raw_scores`` bit for bit (trees are
  summed in tree order); rows/s are the best of ``--repeats`` interleaved runs, one thread.

Model: the pipeline's 19-class LightGBM trained on the **real** CICIoMT2024 v2 sample train rows (or
``--bundle``); rows: the sample's **test** rows resampled (seed 0) to ``--rows``.

    python benchmarks/bench_tree_codegen.py --out benchmarks/results/tree-codegen-cpu.json
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, load_average, machine, write_result

from iomt_ids.models import llvm_host

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
ROW_BLOCK = 16384
ENTRY = "cg_scores"
# cg_scores(X, n, nfeat, out, nout, row_block, fns_per_block)
_SIG = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
    ctypes.c_int64, ctypes.c_int64,
)  # fmt: skip

# -- code generation -----------------------------------------------------------------------------


def _hex_doubles(values: np.ndarray) -> list[str]:
    """LLVM hex literals (``0x`` + the 16 hex digits of the float64 bits): exact for any double."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return [f"0x{b:016X}" for b in bits.tolist()]


def _driver(n_fns: int) -> str:
    """for row block: for block of ``fns_per_block`` functions: for row: for fn in block: fn(xrow, orow)."""
    return f"""define void @{ENTRY}(ptr noalias nocapture readonly %X, i64 %n, i64 %nfeat,
    ptr noalias nocapture %out, i64 %nout, i64 %rb, i64 %gb) nounwind {{
entry:
  %go = icmp sgt i64 %n, 0
  br i1 %go, label %rblock, label %done
rblock:
  %r0 = phi i64 [0, %entry], [%r1, %rblock.end]
  %r0.plus = add i64 %r0, %rb
  %r1.lt = icmp slt i64 %r0.plus, %n
  %r1 = select i1 %r1.lt, i64 %r0.plus, i64 %n
  br label %gblock
gblock:
  %b0 = phi i64 [0, %rblock], [%b1, %gblock.end]
  %b0.plus = add i64 %b0, %gb
  %b1.lt = icmp slt i64 %b0.plus, {n_fns}
  %b1 = select i1 %b1.lt, i64 %b0.plus, i64 {n_fns}
  br label %row
row:
  %r = phi i64 [%r0, %gblock], [%r.next, %row.end]
  %xoff = mul i64 %r, %nfeat
  %xrow = getelementptr inbounds float, ptr %X, i64 %xoff
  %ooff = mul i64 %r, %nout
  %orow = getelementptr inbounds double, ptr %out, i64 %ooff
  br label %fn
fn:
  %g = phi i64 [%b0, %row], [%g.next, %fn]
  %fpp = getelementptr inbounds [{n_fns} x ptr], ptr @fns, i64 0, i64 %g
  %fp = load ptr, ptr %fpp
  call void %fp(ptr %xrow, ptr %orow)
  %g.next = add i64 %g, 1
  %gmore = icmp slt i64 %g.next, %b1
  br i1 %gmore, label %fn, label %row.end
row.end:
  %r.next = add i64 %r, 1
  %rmore = icmp slt i64 %r.next, %r1
  br i1 %rmore, label %row, label %gblock.end
gblock.end:
  %bmore = icmp slt i64 %b1, {n_fns}
  br i1 %bmore, label %gblock, label %rblock.end
rblock.end:
  %rbmore = icmp slt i64 %r1, %n
  br i1 %rbmore, label %rblock, label %done
done:
  ret void
}}
"""


def codegen_ir(tables: Any, trees_per_fn: int) -> tuple[str, int]:
    """LLVM IR scoring ``tables`` as branch code, ``trees_per_fn`` trees to a function; (IR, functions).

    Node ``i`` of the pre-ordered tables becomes block ``%n<i>``: an internal node loads its feature
    and branches on ``x > thr`` (thr is a float32, written as the hex of its exact float64 value, as
    LLVM wants float literals); a leaf adds each of its values to ``o[tree_out + w]`` and jumps to
    the next tree's root (or returns). Within a function, and across functions called in order, each
    output column receives its leaves in tree order: the sums equal the shipped kernel's exactly.
    """
    info = tables.info.tolist()
    thr = _hex_doubles(tables.thr.astype(np.float64))
    leaf = tables.leaf_values.astype(np.float64)  # float32 leaves widen exactly, as the kernel's fpext
    width = leaf.shape[1]
    leaf_hex = _hex_doubles(leaf.ravel())
    roots, tree_out = tables.roots.tolist(), tables.tree_out.tolist()
    n_trees = len(roots)
    n_fns = -(-n_trees // trees_per_fn)
    parts: list[str] = []
    a = parts.append
    for k in range(n_fns):
        group = range(k * trees_per_fn, min((k + 1) * trees_per_fn, n_trees))
        a(
            f"define internal void @g{k}(ptr noalias nocapture readonly %x, ptr noalias nocapture %o) "
            f"noinline nounwind {{\nentry:\n  br label %n{roots[group[0]]}\n"
        )
        for t in group:
            after = f"n{roots[t + 1]}" if t + 1 < group.stop else "exit"
            col = tree_out[t]
            stack = [roots[t]]
            while stack:
                i = stack.pop()
                word = info[i]
                if word >= 0:
                    f, right = word & 1023, i + (word >> 10)
                    a(
                        f"n{i}:\n  %p{i} = getelementptr inbounds float, ptr %x, i64 {f}\n"
                        f"  %v{i} = load float, ptr %p{i}\n  %c{i} = fcmp ogt float %v{i}, {thr[i]}\n"
                        f"  br i1 %c{i}, label %n{right}, label %n{i + 1}\n"
                    )
                    stack.append(right)
                    stack.append(i + 1)
                    continue
                base = ~word * width
                a(f"n{i}:\n")
                for w in range(width):
                    s = f"{i}.{w}"
                    a(
                        f"  %q{s} = getelementptr inbounds double, ptr %o, i64 {col + w}\n"
                        f"  %a{s} = load double, ptr %q{s}\n  %s{s} = fadd double %a{s}, {leaf_hex[base + w]}\n"
                        f"  store double %s{s}, ptr %q{s}\n"
                    )
                a(f"  br label %{after}\n")
        a("exit:\n  ret void\n}\n\n")
    table = ", ".join(f"ptr @g{k}" for k in range(n_fns))
    a(f"@fns = internal unnamed_addr constant [{n_fns} x ptr] [{table}]\n\n")
    a(_driver(n_fns))
    return "".join(parts), n_fns


# -- compiling -----------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _compile_child(conn: Any, ir: str, level: int) -> None:
    """Parse, optimise at ``level`` and emit machine code; sends timings and the object's bytes."""
    rss0 = _status_kb("VmRSS")
    llvm = llvm_host.llvm()
    tm = llvm_host.native_target_machine(level)
    t0 = time.perf_counter()
    module = llvm.parse_assembly(ir)
    module.verify()
    t1 = time.perf_counter()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=level))
    pb.getModulePassManager().run(module, pb)
    t2 = time.perf_counter()
    obj = tm.emit_object(module)
    t3 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(
        {
            "parse_s": round(t1 - t0, 3),
            "optimize_s": round(t2 - t1, 3),
            "codegen_s": round(t3 - t2, 3),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "peak_rss_mb": round(_status_kb("VmHWM") / 1024, 1),
            "rss_at_fork_mb": round(rss0 / 1024, 1),
            "object_kb": round(len(obj) / 1024, 1),
        }
    )
    conn.send_bytes(obj)
    conn.close()


def compile_in_child(ir: str, level: int, timeout_s: float) -> tuple[dict[str, Any], bytes | None]:
    """Compile ``ir`` at ``level`` in a forked child; stops it after ``timeout_s`` (status "timeout")."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    la0 = load_average()
    t0 = time.perf_counter()
    proc = ctx.Process(target=_compile_child, args=(send, ir, level), daemon=True)
    proc.start()
    send.close()
    rec: dict[str, Any] = {"load_average_before": la0}
    obj = None
    if recv.poll(timeout_s):
        try:
            rec.update(recv.recv())
            obj = recv.recv_bytes()
            rec["status"] = "ok"
        except EOFError:
            rec["status"] = "failed (child exited without a result)"
    elif proc.is_alive():
        rec["status"] = f"timeout: not compiled after {timeout_s:.0f} s (child stopped)"
    else:
        rec["status"] = "failed (child exited without a result)"
    if obj is None and proc.is_alive():
        proc.kill()
    proc.join()
    recv.close()
    rec["child_wall_s"] = round(time.perf_counter() - t0, 2)
    rec["load_average_after"] = load_average()
    return rec, obj


def load_object(obj: bytes) -> tuple[Any, Any, float]:
    """An MCJIT engine holding ``obj``, the entry point, and the seconds it took."""
    llvm = llvm_host.llvm()
    t0 = time.perf_counter()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), llvm_host.native_target_machine(0))
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    fn = _SIG(engine.get_function_address(ENTRY))
    return engine, fn, time.perf_counter() - t0


# -- the run -------------------------------------------------------------------------------------


def _model_and_rows(args: argparse.Namespace) -> tuple[Any, np.ndarray, str, int]:
    from iomt_ids.data.loader import find_csv_files, load_csv_files

    if args.bundle is not None:
        from iomt_ids.artifacts import load_bundle

        bundle = load_bundle(args.bundle)
        model = f"bundle {args.bundle} ({bundle.meta.get('version', '?')})"
    else:
        from iomt_ids.workflows import fit_bundle

        train = load_csv_files(find_csv_files(SAMPLE / "train"))
        print("training LightGBM (19 classes) on the sample ...", file=sys.stderr)
        bundle, _ = fit_bundle(train.table.to_pandas(), train.labels, task=19, model="lightgbm", device="cpu")
        model = "19-class LightGBM fitted on the sample's train rows (fit_bundle, seed 0)"
    test = load_csv_files(find_csv_files(SAMPLE / "test"))
    pool = test.table.select(list(bundle.input_columns)).to_numpy()
    raw = pool[np.random.default_rng(0).integers(0, len(pool), args.rows)]
    x = np.ascontiguousarray(bundle.transform(raw), dtype=np.float32)
    return bundle.estimator._build_tables(), x, model, len(pool)


def main() -> None:
    for var in ("IOMT_IDS_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one thread for LightGBM's training and everything else
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bundle", type=Path, default=None, help="reuse a trained LightGBM bundle folder")
    ap.add_argument("--trees-per-fn", default="1,16,64,all", help="comma list; 'all' = one function")
    ap.add_argument("--levels", default="0,1,2,3", help="LLVM optimisation levels to compile at")
    ap.add_argument("--tree-blocks", default="8,32,all", help="trees per block of the row loop")
    ap.add_argument("--compile-timeout", type=float, default=300.0, help="seconds per compile")
    ap.add_argument("--out", type=Path, default=RESULTS / "tree-codegen-cpu.json")
    args = ap.parse_args()
    if not (SAMPLE / "test").is_dir():
        sys.exit(f"bench_tree_codegen: the real sample is missing at {SAMPLE}")
    info = machine("cpu")
    t, x, model_desc, pool_rows = _model_and_rows(args)
    n_trees = t.n_trees
    tpfs = [n_trees if v == "all" else int(v) for v in args.trees_per_fn.split(",")]
    levels = [int(v) for v in args.levels.split(",")]
    tree_blocks = [n_trees if v == "all" else int(v) for v in args.tree_blocks.split(",")]
    ref = t.raw_scores(x, threads=1)

    compiles: dict[str, Any] = {}
    runs: list[tuple[str, Any]] = []
    variants: dict[str, Any] = {}
    engines: list[Any] = []
    for tpf in tpfs:
        label = "all" if tpf >= n_trees else str(tpf)
        t0 = time.perf_counter()
        ir, n_fns = codegen_ir(t, tpf)
        gen_s = time.perf_counter() - t0
        rec: dict[str, Any] = {
            "ir_gen_s": round(gen_s, 3),
            "ir_mb": round(len(ir) / 2**20, 1),
            "functions": n_fns,
        }
        rec["levels"] = {}
        compiles[f"tpf_{label}"] = rec
        print(f"trees/fn {label}: IR {rec['ir_mb']} MB in {gen_s:.2f} s, {n_fns} functions", file=sys.stderr)
        gave_up = None
        for level in levels:
            if gave_up is not None:
                rec["levels"][f"O{level}"] = {"status": f"skipped: O{gave_up} did not finish in time"}
                continue
            c, obj = compile_in_child(ir, level, args.compile_timeout)
            rec["levels"][f"O{level}"] = c
            if obj is None:
                gave_up = level
                print(f"  O{level}: {c['status']}", file=sys.stderr)
                continue
            engine, fn, load_s = load_object(obj)
            engines.append(engine)
            c["load_s"] = round(load_s, 3)
            c["compile_s"] = round(c["parse_s"] + c["optimize_s"] + c["codegen_s"] + load_s, 2)
            print(
                f"  O{level}: compile {c['compile_s']} s (parse {c['parse_s']}, opt {c['optimize_s']}, "
                f"codegen {c['codegen_s']}, load {c['load_s']}), object {c['object_kb']} kB",
                file=sys.stderr,
            )
            seen = set()
            for tb in tree_blocks:
                gb = max(1, min(n_fns, tb // tpf))
                if gb in seen:
                    continue
                seen.add(gb)
                name = f"codegen_tpf{label}_O{level}_tb{min(gb * tpf, n_trees)}"

                def run(fn: Any = fn, gb: int = gb) -> np.ndarray:
                    out = np.zeros((len(x), t.n_outputs))
                    fn(x.ctypes.data, len(x), x.shape[1], out.ctypes.data, t.n_outputs, ROW_BLOCK, gb)
                    return out

                runs.append((name, run))
                variants[name] = {
                    "trees_per_fn": tpf,
                    "level": level,
                    "row_block": ROW_BLOCK,
                    "trees_per_block": min(gb * tpf, n_trees),
                    "compile_s": c["compile_s"],
                }
        del ir

    runs.insert(0, ("shipped", lambda: t.raw_scores(x, threads=1)))
    variants = {"shipped": {"kernel": "models/compiled.py table walk, O3"}, **variants}
    for name, run in runs:
        out = run()
        rec = variants[name]
        rec["exact"] = bool(np.array_equal(out, ref))
        rec["max_abs_diff"] = float(np.max(np.abs(out - ref)))
        rec["rows_per_s"] = []
        rec["load_average"] = []
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits every variant alike
        for name, run in runs:
            la0 = load_average()
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            variants[name]["rows_per_s"].append(round(len(x) / dt))
            variants[name]["load_average"].append([la0[0], load_average()[0]])
    best_shipped = max(variants["shipped"]["rows_per_s"])
    print(f"\n{'variant':40s} {'rows/s':>12s} {'vs shipped':>10s} {'compile s':>10s} exact", file=sys.stderr)
    for name, rec in variants.items():
        rec["best_rows_per_s"] = max(rec["rows_per_s"])
        rec["vs_shipped"] = round(rec["best_rows_per_s"] / best_shipped, 2)
        print(
            f"{name:40s} {rec['best_rows_per_s']:>12,} {rec['vs_shipped']:>10.2f} "
            f"{rec.get('compile_s', '-')!s:>10s} {rec['exact']}",
            file=sys.stderr,
        )

    cg = {k: v for k, v in variants.items() if k != "shipped"}
    all_exact = all(v["exact"] for v in variants.values())
    if cg:
        best = max(cg, key=lambda k: cg[k]["best_rows_per_s"])
        b = cg[best]
        faster = [v for v in cg.values() if v["vs_shipped"] > 1.0]
        cheapest = min(faster, key=lambda v: v["compile_s"]) if faster else None
        conclusion = (
            f"best code-generated variant {best}: {b['best_rows_per_s']:,} rows/s = {b['vs_shipped']}x the "
            f"shipped table walk ({best_shipped:,} rows/s), after {b['compile_s']} s of compiling "
            f"(the shipped kernel compiles once in tens of ms)"
        )
        if cheapest is not None:
            conclusion += (
                f"; the cheapest variant that beats the table walk compiles in {cheapest['compile_s']} s "
                f"(O{cheapest['level']}, {cheapest['trees_per_fn']} trees/fn, {cheapest['vs_shipped']}x)"
            )
        else:
            conclusion += "; no code-generated variant beats the table walk"
    else:
        conclusion = "no code-generated variant compiled within the time limit"
    timeouts = [
        f"{k} O{lv[1:]}" for k, r in compiles.items() for lv, c in r["levels"].items() if c["status"] != "ok"
    ]
    if timeouts:
        conclusion += f"; not compiled within {args.compile_timeout:.0f} s: {', '.join(timeouts)}"
    conclusion += "; raw scores " + ("equal the shipped kernel's exactly" if all_exact else "DIFFER")
    print("\n" + conclusion, file=sys.stderr)
    write_result(
        {
            "benchmark": "tree_codegen",
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "data": f"real CICIoMT2024 v2 sample: {pool_rows:,} test rows (preprocessed by the bundle) "
            f"resampled (seed 0) to {args.rows:,}",
            "model": {"source": model_desc, "trees": n_trees, "nodes": t.n_nodes, "outputs": t.n_outputs},
            "threads": 1,
            "method": "compile = parse+verify, new-PM O<level> pipeline and emit_object in a forked child "
            "(timeout per compile), plus MCJIT add_object_file+finalize in the parent; rows/s = best of "
            f"{args.repeats} interleaved runs; parity = np.array_equal with TreeTables.raw_scores",
            "compile": compiles,
            "variants": variants,
            "parity_exact": all_exact,
            "conclusion": conclusion,
            "machine": info,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
