"""Variants of the compiled tree kernel, measured against the one ``models/compiled.py`` ships.

Why this exists: issue 14 asks for tree scoring at >= 10x LightGBM's own ``predict``; the shipped
kernel (a pre-ordered node table walked one row at a time, trees in blocks that stay in cache)
gives about 5.6x on a quiet 2-core host (``benchmarks/results/trees-cpu.json``). Two layouts that
usually help interpreters were tried here, with the same tables and the same exact arithmetic:

* ``lanes_K``: K rows walk each tree in lock-step (K independent dependency chains, leaves made
  absorbing with selects, one loop exit per K rows instead of one mispredicted exit per row);
* ``packed``: the shipped walk, but threshold and node word in one 64-bit node (one load a step).

Model: the pipeline's 19-class LightGBM trained on the **real** CICIoMT2024 v2 sample train rows;
rows: the sample's **test** rows resampled (seed 0) to ``--rows``. One thread. Every variant's raw
scores are checked equal to the shipped kernel's.

    python benchmarks/bench_kernel_variants.py --out benchmarks/results/kernel-variants-cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine, write_result

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
_SIG = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
)  # fmt: skip


def _head(name: str) -> str:
    """Signature, row and tree blocks and the row loop's phi, as in the shipped kernel (nodes packed)."""
    return f"""define void @{name}(ptr noalias nocapture readonly %X, i64 %n, i64 %nfeat,
    ptr noalias nocapture readonly %nodes, ptr noalias nocapture readonly %roots, i64 %ntrees,
    ptr noalias nocapture readonly %tree_out, ptr noalias nocapture readonly %leafval, i64 %nout,
    ptr noalias nocapture %out, i64 %rb, i64 %tb) nounwind {{
entry:
  %has_rows = icmp sgt i64 %n, 0
  %has_trees = icmp sgt i64 %ntrees, 0
  %go = and i1 %has_rows, %has_trees
  br i1 %go, label %rblock, label %done
rblock:
  %r0 = phi i64 [0, %entry], [%r1, %rblock.end]
  %r0.plus = add i64 %r0, %rb
  %r1.lt = icmp slt i64 %r0.plus, %n
  %r1 = select i1 %r1.lt, i64 %r0.plus, i64 %n
  br label %tblock
tblock:
  %t0 = phi i64 [0, %rblock], [%t1, %tblock.end]
  %t0.plus = add i64 %t0, %tb
  %t1.lt = icmp slt i64 %t0.plus, %ntrees
  %t1 = select i1 %t1.lt, i64 %t0.plus, i64 %ntrees
  br label %row
row:
  %r = phi i64 [%r0, %tblock], [%r.next, %row.end]"""


def _tail(rows_per_step: int) -> str:
    """From the end of a tree to the end of the function; the row loop advances ``rows_per_step``."""
    return f"""tree.end:
  %t.next = add i64 %t, 1
  %tmore = icmp slt i64 %t.next, %t1
  br i1 %tmore, label %tree, label %row.end
row.end:
  %r.next = add i64 %r, {rows_per_step}
  %rmore = icmp slt i64 %r.next, %r1
  br i1 %rmore, label %row, label %tblock.end
tblock.end:
  %tbmore = icmp slt i64 %t1, %ntrees
  br i1 %tbmore, label %tblock, label %rblock.end
rblock.end:
  %rbmore = icmp slt i64 %r1, %n
  br i1 %rbmore, label %rblock, label %done
done:
  ret void
}}"""


def ir_lanes(K: int, width: int, ltype: str, load_leaf: str) -> str:
    L = []
    a = L.append
    a(_head("iomt_tree_scores_k"))
    for k in range(K):
        a(f"""  %rk{k} = add i64 %r, {k}
  %xoff{k} = mul i64 %rk{k}, %nfeat
  %xrow{k} = getelementptr inbounds float, ptr %X, i64 %xoff{k}
  %ooff{k} = mul i64 %rk{k}, %nout
  %orow{k} = getelementptr inbounds double, ptr %out, i64 %ooff{k}""")
    a("""  br label %tree
tree:
  %t = phi i64 [%t0, %row], [%t.next, %tree.end]
  %rootp = getelementptr inbounds i32, ptr %roots, i64 %t
  %root = load i32, ptr %rootp
  %root64 = sext i32 %root to i64
  %nproot = getelementptr inbounds i64, ptr %nodes, i64 %root64
  %ndroot = load i64, ptr %nproot
  br label %walk
walk:""")
    for k in range(K):
        a(f"""  %i{k} = phi i64 [%root64, %tree], [%in{k}, %walk]
  %nd{k} = phi i64 [%ndroot, %tree], [%ndn{k}, %walk]""")
    for k in range(K):
        a(f"""  %inf{k} = ashr i64 %nd{k}, 32
  %inf32_{k} = trunc i64 %inf{k} to i32
  %leaf{k} = icmp slt i32 %inf32_{k}, 0
  %fr{k} = and i32 %inf32_{k}, 1023
  %f{k} = select i1 %leaf{k}, i32 0, i32 %fr{k}
  %f64_{k} = zext i32 %f{k} to i64
  %xp{k} = getelementptr inbounds float, ptr %xrow{k}, i64 %f64_{k}
  %xv{k} = load float, ptr %xp{k}
  %thb{k} = trunc i64 %nd{k} to i32
  %th{k} = bitcast i32 %thb{k} to float
  %gt{k} = fcmp ogt float %xv{k}, %th{k}
  %roff{k} = lshr i32 %inf32_{k}, 10
  %roff64_{k} = zext i32 %roff{k} to i64
  %st1_{k} = select i1 %gt{k}, i64 %roff64_{k}, i64 1
  %st{k} = select i1 %leaf{k}, i64 0, i64 %st1_{k}
  %in{k} = add i64 %i{k}, %st{k}
  %npn{k} = getelementptr inbounds i64, ptr %nodes, i64 %in{k}
  %ndn{k} = load i64, ptr %npn{k}
  %dn{k} = icmp slt i64 %ndn{k}, 0""")
    acc = "%dn0"
    for k in range(1, K):
        a(f"  %all{k} = and i1 {acc}, %dn{k}")
        acc = f"%all{k}"
    a(f"""  br i1 {acc}, label %leaves, label %walk
leaves:
  %toutp = getelementptr inbounds i32, ptr %tree_out, i64 %t
  %tout = load i32, ptr %toutp
  %tout64 = sext i32 %tout to i64""")
    for k in range(K):
        a(f"""  %lhi{k} = ashr i64 %ndn{k}, 32
  %l32_{k} = trunc i64 %lhi{k} to i32
  %lidx{k} = xor i32 %l32_{k}, -1
  %lidx64_{k} = zext i32 %lidx{k} to i64
  %lbase{k} = mul i64 %lidx64_{k}, {width}
  %lvp{k} = getelementptr inbounds {ltype}, ptr %leafval, i64 %lbase{k}
  %op{k} = getelementptr inbounds double, ptr %orow{k}, i64 %tout64""")
    for k in range(K):
        nxt = f"acc{k + 1}" if k + 1 < K else "tree.end"
        prev = "leaves" if k == 0 else f"acc{k - 1}"
        a(
            (f"  br label %acc{k}\n" if k == 0 else "")
            + f"""acc{k}:
  %w{k} = phi i64 [0, %{prev}], [%wn{k}, %acc{k}]
  %lvw{k} = getelementptr inbounds {ltype}, ptr %lvp{k}, i64 %w{k}
{load_leaf.replace("%lvw", f"%lvw{k}").replace("%v.raw", f"%vraw{k}").replace("%v ", f"%v{k} ")}
  %opw{k} = getelementptr inbounds double, ptr %op{k}, i64 %w{k}
  %o{k} = load double, ptr %opw{k}
  %s{k} = fadd double %o{k}, %v{k}
  store double %s{k}, ptr %opw{k}
  %wn{k} = add i64 %w{k}, 1
  %wm{k} = icmp slt i64 %wn{k}, {width}
  br i1 %wm{k}, label %acc{k}, label %{nxt}"""
        )
    a(_tail(K))
    return "\n".join(L)


def ir_packed(width: int, ltype: str, load_leaf: str) -> str:
    body = r"""
  %xoff = mul i64 %r, %nfeat
  %xrow = getelementptr inbounds float, ptr %X, i64 %xoff
  %ooff = mul i64 %r, %nout
  %orow = getelementptr inbounds double, ptr %out, i64 %ooff
  br label %tree
tree:
  %t = phi i64 [%t0, %row], [%t.next, %tree.end]
  %rootp = getelementptr inbounds i32, ptr %roots, i64 %t
  %root = load i32, ptr %rootp
  %root64 = sext i32 %root to i64
  %np0 = getelementptr inbounds i64, ptr %nodes, i64 %root64
  %nd0 = load i64, ptr %np0
  %isleaf0 = icmp slt i64 %nd0, 0
  br i1 %isleaf0, label %leaf, label %walk
walk:
  %i = phi i64 [%root64, %tree], [%i.next, %walk]
  %nd = phi i64 [%nd0, %tree], [%nd.next, %walk]
  %hi = lshr i64 %nd, 32
  %inf = trunc i64 %hi to i32
  %f = and i32 %inf, 1023
  %f64 = zext i32 %f to i64
  %xp = getelementptr inbounds float, ptr %xrow, i64 %f64
  %xv = load float, ptr %xp
  %thb = trunc i64 %nd to i32
  %th = bitcast i32 %thb to float
  %gt = fcmp ogt float %xv, %th
  %roff = lshr i32 %inf, 10
  %roff64 = zext i32 %roff to i64
  %step = select i1 %gt, i64 %roff64, i64 1
  %i.next = add i64 %i, %step
  %npn = getelementptr inbounds i64, ptr %nodes, i64 %i.next
  %nd.next = load i64, ptr %npn
  %more = icmp sge i64 %nd.next, 0
  br i1 %more, label %walk, label %leaf
leaf:
  %lnd = phi i64 [%nd0, %tree], [%nd.next, %walk]
  %lhi = ashr i64 %lnd, 32
  %linf = trunc i64 %lhi to i32
  %lidx = xor i32 %linf, -1
  %lidx64 = zext i32 %lidx to i64
  %lbase = mul i64 %lidx64, WIDTH
  %lvp = getelementptr inbounds LTYPE, ptr %leafval, i64 %lbase
  %toutp = getelementptr inbounds i32, ptr %tree_out, i64 %t
  %tout = load i32, ptr %toutp
  %tout64 = sext i32 %tout to i64
  %op = getelementptr inbounds double, ptr %orow, i64 %tout64
  br label %acc
acc:
  %w = phi i64 [0, %leaf], [%w.next, %acc]
  %lvw = getelementptr inbounds LTYPE, ptr %lvp, i64 %w
LOAD_LEAF
  %opw = getelementptr inbounds double, ptr %op, i64 %w
  %o = load double, ptr %opw
  %s = fadd double %o, %v
  store double %s, ptr %opw
  %w.next = add i64 %w, 1
  %wmore = icmp slt i64 %w.next, WIDTH
  br i1 %wmore, label %acc, label %tree.end
"""
    body = body.replace("LOAD_LEAF", load_leaf).replace("WIDTH", str(width)).replace("LTYPE", ltype)
    return _head("iomt_tree_scores_p") + body + _tail(1) + "\n"


def compile_ir(ir: str, name: str) -> tuple[Any, Any]:
    import llvmlite.binding as llvm

    from iomt_ids.models.compiled import _optimize

    with contextlib.suppress(AttributeError, RuntimeError):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
    )
    module = llvm.parse_assembly(ir)
    module.verify()
    _optimize(llvm, module, tm)
    engine = llvm.create_mcjit_compiler(module, tm)
    engine.finalize_object()
    return engine, _SIG(engine.get_function_address(name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "kernel-variants-cpu.json")
    args = ap.parse_args()
    if not (SAMPLE / "test").is_dir():
        sys.exit(f"bench_kernel_variants: the real sample is missing at {SAMPLE}")
    from iomt_ids.data.loader import find_csv_files, load_csv_files
    from iomt_ids.workflows import fit_bundle

    info = machine("cpu")
    train = load_csv_files(find_csv_files(SAMPLE / "train"))
    print("training LightGBM (19 classes) on the sample ...", file=sys.stderr)
    bundle, _ = fit_bundle(train.table.to_pandas(), train.labels, task=19, model="lightgbm", device="cpu")
    test = load_csv_files(find_csv_files(SAMPLE / "test"))
    pool = test.table.select(list(bundle.input_columns)).to_numpy()
    raw = pool[np.random.default_rng(0).integers(0, len(pool), args.rows)]
    x = np.ascontiguousarray(bundle.transform(raw))
    t = bundle.estimator._build_tables()
    assert t.leaf_values.shape[1] == 1 and t.leaf_values.dtype == np.float64
    packed_nodes = (t.info.astype(np.int64) << 32) | t.thr.view(np.uint32).astype(np.int64)
    ref = t.raw_scores(x, 1)

    def shipped() -> np.ndarray:
        return t.raw_scores(x, 1)

    def variant(fn: Any, tb: int) -> Any:
        def run() -> np.ndarray:
            out = np.zeros((len(x), t.n_outputs))
            fn(x.ctypes.data, len(x), x.shape[1], packed_nodes.ctypes.data, t.roots.ctypes.data, t.n_trees,
               t.tree_out.ctypes.data, t.leaf_values.ctypes.data, t.n_outputs, out.ctypes.data, 16384, tb)  # fmt: skip
            return out

        return run

    load = "  %v = load double, ptr %lvw"
    candidates: list[tuple[str, Any]] = [("shipped", shipped)]
    engines = []
    eng, fn = compile_ir(ir_packed(1, "double", load), "iomt_tree_scores_p")
    engines.append(eng)
    candidates += [(f"packed_tb{tb}", variant(fn, tb)) for tb in (16, 32)]
    for k in (1, 2, 4, 8):
        eng, fn = compile_ir(ir_lanes(k, 1, "double", load), "iomt_tree_scores_k")
        engines.append(eng)
        candidates += [(f"lanes_{k}_tb{tb}", variant(fn, tb)) for tb in (8, 32)]
    results: dict[str, Any] = {}
    for name, run in candidates:
        out = run()
        if not np.array_equal(out, ref):
            sys.exit(f"bench_kernel_variants: {name} does not reproduce the shipped kernel's scores")
        results[name] = {"rows_per_s": []}
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits every variant alike
        for name, run in candidates:
            t0 = time.perf_counter()
            run()
            results[name]["rows_per_s"].append(round(len(x) / (time.perf_counter() - t0)))
    for name, rec in results.items():
        rec["median_rows_per_s"] = int(np.median(rec["rows_per_s"]))
        rec["vs_shipped"] = round(rec["median_rows_per_s"] / np.median(results["shipped"]["rows_per_s"]), 2)
        print(
            f"  {name}: {rec['median_rows_per_s']:,} rows/s ({rec['vs_shipped']}x shipped)", file=sys.stderr
        )
    write_result(
        {
            "benchmark": "tree_kernel_variants",
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "data": f"real CICIoMT2024 v2 sample: LightGBM trained on train/, {len(pool):,} test rows resampled "
            f"(seed 0) to {args.rows:,}",
            "model": {"trees": t.n_trees, "nodes": t.n_nodes},
            "threads": 1,
            "load_average_start": info["load_average_start"],
            "variants": results,
            "parity": "every variant's raw scores equal the shipped kernel's (np.array_equal)",
            "machine": info,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
