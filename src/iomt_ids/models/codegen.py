"""Branch code for tree ensembles: every tree as machine code, compiled once per machine and cached, trusted.

Why (``benchmarks/bench_tree_codegen.py`` and ``benchmarks/bench_trees.py``): the table kernel
of :mod:`iomt_ids.models.compiled` walks node tables, loading each node's feature, threshold
and child offset. Written as branch code instead (a tree's thresholds, feature offsets and
leaf offsets as constants in the instructions), the 19-class LightGBM model of the sample
scores about 2x faster. The price is compiling: LLVM's code generator needs about 15-25 CPU-s
for its 213 k nodes, so the code is compiled **once**, when a tree bundle is saved (``train``,
``adapt``) or by ``iomt-ids compile BUNDLE``, split over child processes (one per usable
core), and cached. Any process that later loads the bundle on this machine maps the cached
code in a fraction of a second; where no trusted code exists it scores with the tables.

How it stays safe (the tables' design, for code)
-------------------------------------------------
* The cached file (``compiled-trees-code.npz`` in the bundle folder, or
  ``<user cache>/code/<weights sha256>.npz`` when the folder is read-only) holds object
  files as plain byte arrays, read with ``np.load(allow_pickle=False)``.
* Its bytes are used only when their SHA-256 has a trust record in this user's private
  cache folder (:class:`~iomt_ids.models.compiled.TrustStore`) naming the SHA-256 of the
  weights it was generated from, the code format and the host it was compiled for
  (LLVM version, target triple, CPU name and features, level): a record this machine wrote
  right after compiling the code itself. A file copied in from elsewhere, edited, or built
  from other weights or for another CPU is never loaded, whatever its name or header.
* The bytes that were hashed are the bytes handed to LLVM (no second read).
* The code is generated from the validated tables, with every feature offset below the row
  width and every output column inside the output row.

Exactness: a split compares order keys (:func:`order_keys`), the same test as the tables'
``x > threshold`` on float32; each leaf adds its value (float64, exact) to its output column,
and the trees of a row run in tree order, so the raw scores equal the table kernel's bit for bit.
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.models.compiled import (
    ROW_BLOCK,
    CompileError,
    TreeTables,
    TrustStore,
    _address,
    cache_paths,
    run_in_row_chunks,
    sha256_bytes,
    store_trusted,
)

__all__ = [
    "CODE_ENV",
    "CODE_FILE",
    "CODE_FORMAT",
    "BranchCode",
    "code_enabled",
    "compile_and_cache",
    "fits",
    "load_trusted",
]

log = logging.getLogger(__name__)

#: File name of the cached branch code inside a bundle folder (fixed: never read from bundle.json).
CODE_FILE = "compiled-trees-code.npz"
#: Format tag of the code file and its trust records; bump when the generated code changes.
CODE_FORMAT = "iomt-ids-tree-code/2"
#: ``auto`` (default): compile at save and use trusted code; ``off``: the table kernel only.
CODE_ENV = "IOMT_IDS_TREE_CODE"
#: Trees per generated function (bench_tree_codegen: 16 scored fastest; 1 or 64 were slower).
TREES_PER_FN = 16
#: LLVM code-generation level, without IR passes (IR passes doubled the compile time for nothing). On the
#: sample's 19-class model, one job: level 0 compiles in ~8 s but scores 10-20 % slower than level 1
#: (~30 s); level 2 is no faster than 1. Compiling happens once per machine, scoring all the time.
CODEGEN_LEVEL = 1
#: Nodes per compiled chunk (one child process each; a progress step each).
NODES_PER_CHUNK = 24_000
#: Larger ensembles (in inner nodes plus leaf values written) keep the table kernel: deep forests
#: would take minutes to compile, and their code would not stay in cache.
MAX_OPS = 1_200_000
#: Below this many rows a call scores with the tables (measured on the 19-class model: the code wins from
#: about 16 rows; for a few rows the tables' 2.5 MB are warmer in cache than the 3.4 MB of code).
MIN_ROWS = 16
#: Seconds one chunk may take to compile before the compile is abandoned.
COMPILE_TIMEOUT_S = 600.0

_DRIVE = "iomt_cg_drive"

# drive(K, n, nfeat, out, nout, row_block, fns, nfns, leaves): for each block of rows, for each
# function, for each row of the block: fns[k](K + row * nfeat, out + row * nout, leaves). K holds the
# rows' order keys (see order_keys); a function adds the leaf values of its trees to the row's output;
# the functions run in tree order.
_DRIVER_IR = f"""
define void @{_DRIVE}(ptr noalias nocapture readonly %X, i64 %n, i64 %nfeat,
    ptr noalias nocapture %out, i64 %nout, i64 %rb, ptr noalias nocapture readonly %fns,
    i64 %nfns, ptr noalias nocapture readonly %lv) nounwind {{
entry:
  %has_rows = icmp sgt i64 %n, 0
  %has_fns = icmp sgt i64 %nfns, 0
  %go = and i1 %has_rows, %has_fns
  br i1 %go, label %rblock, label %done
rblock:
  %r0 = phi i64 [0, %entry], [%r1, %rblock.end]
  %r0.plus = add i64 %r0, %rb
  %r1.lt = icmp slt i64 %r0.plus, %n
  %r1 = select i1 %r1.lt, i64 %r0.plus, i64 %n
  br label %fn
fn:
  %k = phi i64 [0, %rblock], [%k.next, %fn.end]
  %fpp = getelementptr inbounds ptr, ptr %fns, i64 %k
  %fp = load ptr, ptr %fpp
  br label %row
row:
  %r = phi i64 [%r0, %fn], [%r.next, %row]
  %xoff = mul i64 %r, %nfeat
  %xrow = getelementptr inbounds i32, ptr %X, i64 %xoff
  %ooff = mul i64 %r, %nout
  %orow = getelementptr inbounds double, ptr %out, i64 %ooff
  call void %fp(ptr %xrow, ptr %orow, ptr %lv)
  %r.next = add i64 %r, 1
  %rmore = icmp slt i64 %r.next, %r1
  br i1 %rmore, label %row, label %fn.end
fn.end:
  %k.next = add i64 %k, 1
  %kmore = icmp slt i64 %k.next, %nfns
  br i1 %kmore, label %fn, label %rblock.end
rblock.end:
  %rbmore = icmp slt i64 %r1, %n
  br i1 %rbmore, label %rblock, label %done
done:
  ret void
}}
"""

_P, _I = ctypes.c_void_p, ctypes.c_int64
_DRIVE_SIG = ctypes.CFUNCTYPE(None, _P, _I, _I, _P, _I, _I, _P, _I, _P)


def code_enabled() -> bool:
    """Whether branch code is compiled and used (``IOMT_IDS_TREE_CODE`` is not ``off``)."""
    value = os.environ.get(CODE_ENV, "").strip().lower() or "auto"
    if value not in ("auto", "off"):
        from iomt_ids.exceptions import ConfigError

        raise ConfigError(f"{CODE_ENV} must be 'auto' or 'off'; got {value!r} instead.")
    return value == "auto"


def _ops(tables: TreeTables) -> int:
    leaves = int((tables.info < 0).sum())
    return tables.n_nodes - leaves + leaves * tables.leaf_values.shape[1]


def fits(tables: TreeTables) -> bool:
    """Whether ``tables`` is small enough for branch code (see :data:`MAX_OPS`)."""
    return _ops(tables) <= MAX_OPS


def _n_fns(tables: TreeTables) -> int:
    return -(-tables.n_trees // TREES_PER_FN)


def order_keys(x: np.ndarray) -> np.ndarray:
    """int32 keys of float32 values, in the same order: ``a > b`` iff ``key(a) > key(b)`` (no NaN).

    The sign bit stays; the other bits of a negative value are inverted. -0.0 maps to -1 and
    +0.0 to 0, which no float lies between, so only a threshold of -0.0 needs care (see
    :func:`_threshold_keys`). NaN never reaches the code (such rows go to the native model).
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.int32)
    return bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))


def _threshold_keys(thr: np.ndarray) -> np.ndarray:
    """Keys of the split thresholds; -0.0 counts as +0.0, so that ``x > -0.0`` stays false for x = +0.0."""
    return order_keys(np.where(thr == 0, np.float32(0), thr).astype(np.float32))


def _fn_name(prefix: str, k: int) -> str:
    return f"{prefix}_g{k}"


def branch_ir(tables: TreeTables, fns: range, prefix: str) -> str:
    """LLVM IR of functions ``fns`` (``TREES_PER_FN`` trees each): ``void f(float *x, double *o)``.

    Node ``i`` of the tables becomes block ``%n<i>``: an internal node loads its feature's order
    key (:func:`order_keys`) and branches right on ``key > threshold key`` (an immediate: the
    same test as ``x > threshold``), left (the next node) otherwise; a leaf adds its values,
    read from the float64 leaf table ``lv`` at a constant offset, to ``o[tree_out + w]`` and
    goes to the next tree of the function. No constants live in the code's data sections, so
    the objects need no relocations there.
    """
    info = tables.info
    thr = _threshold_keys(tables.thr).tolist()
    width = tables.leaf_values.shape[1]
    roots, tree_out = tables.roots.tolist(), tables.tree_out.tolist()
    n_trees = len(roots)
    ends = [*roots[1:], tables.n_nodes]
    parts: list[str] = []
    a = parts.append
    for k in fns:
        group = range(k * TREES_PER_FN, min((k + 1) * TREES_PER_FN, n_trees))
        a(
            f"define void @{_fn_name(prefix, k)}(ptr noalias nocapture readonly %x, ptr noalias nocapture %o, "
            "ptr noalias nocapture readonly %lv) "
            f"nounwind {{\nentry:\n  br label %n{roots[group.start]}\n"
        )
        for t in group:
            after = f"n{roots[t + 1]}" if t + 1 < group.stop else "exit"
            col = tree_out[t]
            for i in range(roots[t], ends[t]):  # pre-order: each tree's nodes are contiguous
                word = int(info[i])
                if word >= 0:
                    f, right = word & 1023, i + (word >> 10)
                    a(
                        f"n{i}:\n  %p{i} = getelementptr inbounds i32, ptr %x, i64 {f}\n"
                        f"  %v{i} = load i32, ptr %p{i}\n  %c{i} = icmp sgt i32 %v{i}, {thr[i]}\n"
                        f"  br i1 %c{i}, label %n{right}, label %n{i + 1}\n"
                    )
                    continue
                base = ~word * width
                a(f"n{i}:\n")
                for w in range(width):
                    s = f"{i}.{w}"
                    a(
                        f"  %l{s} = getelementptr inbounds double, ptr %lv, i64 {base + w}\n"
                        f"  %L{s} = load double, ptr %l{s}\n"
                        f"  %q{s} = getelementptr inbounds double, ptr %o, i64 {col + w}\n"
                        f"  %a{s} = load double, ptr %q{s}\n  %s{s} = fadd double %a{s}, %L{s}\n"
                        f"  store double %s{s}, ptr %q{s}\n"
                    )
                a(f"  br label %{after}\n")
        a("exit:\n  ret void\n}\n\n")
    return "".join(parts)


def _chunks(tables: TreeTables) -> list[range]:
    """Function ranges of about :data:`NODES_PER_CHUNK` nodes each."""
    n_fns = _n_fns(tables)
    starts = tables.roots[::TREES_PER_FN].astype(np.int64)
    sizes = np.diff(np.append(starts, tables.n_nodes))
    out: list[range] = []
    first, acc = 0, 0
    for k in range(n_fns):
        acc += int(sizes[k])
        if acc >= NODES_PER_CHUNK or k == n_fns - 1:
            out.append(range(first, k + 1))
            first, acc = k + 1, 0
    return out


def _compile_one(ir: str, source: str) -> bytes:
    cmd = [sys.executable, "-m", "iomt_ids.models.llvm_host", str(CODEGEN_LEVEL)]
    try:
        done = subprocess.run(cmd, input=ir.encode("ascii"), capture_output=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CompileError(f"{source}: compiling branch code took over {COMPILE_TIMEOUT_S:.0f} s.") from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise CompileError(
            f"{source}: the LLVM compiler child failed (exit {done.returncode}): {err[-1] if err else 'no output'}"
        )
    return done.stdout


def compile_objects(
    tables: TreeTables,
    prefix: str,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    source: str = "compiled trees",
) -> list[bytes]:
    """Object files (one per chunk, in order) of the branch code of ``tables``, ``jobs`` compilers at a time."""
    chunks = _chunks(tables)
    objects: list[bytes | None] = [None] * len(chunks)
    with ThreadPoolExecutor(max_workers=max(1, min(int(jobs), len(chunks)))) as pool:
        futures = {
            pool.submit(_compile_one, branch_ir(tables, fns, prefix), source): i
            for i, fns in enumerate(chunks)
        }
        for done, fut in enumerate(as_completed(futures), start=1):
            objects[futures[fut]] = fut.result()
            if progress is not None:
                progress(done, len(chunks))
    return [o for o in objects if o is not None]


class BranchCode:
    """The branch code of one ensemble, mapped into this process (an MCJIT engine) with its driver."""

    def __init__(self, objects: list[bytes], prefix: str, tables: TreeTables, source: str) -> None:
        try:
            from iomt_ids.models.llvm_host import llvm, native_target_machine

            binding = llvm()
            module = binding.parse_assembly(_DRIVER_IR)
            module.verify()
            self._engine = binding.create_mcjit_compiler(module, native_target_machine(2))
            for obj in objects:
                self._engine.add_object_file(binding.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()
            addresses = [
                self._engine.get_function_address(_fn_name(prefix, k)) for k in range(_n_fns(tables))
            ]
            drive = self._engine.get_function_address(_DRIVE)
        except ImportError:
            raise CompileError("branch code needs llvmlite: pip install 'iomt-ids[compiled]'.") from None
        except Exception as exc:  # llvmlite raises RuntimeError and others on a bad object
            raise CompileError(f"{source}: branch code could not be loaded: {exc}") from None
        if not drive or not all(addresses):
            raise CompileError(
                f"{source}: branch code lacks functions for some of its {tables.n_trees} trees."
            )
        self._fns = np.asarray(addresses, dtype=np.uint64)
        self._leaves = np.ascontiguousarray(tables.leaf_values, dtype=np.float64)  # float32 widens exactly
        self._drive = _DRIVE_SIG(drive)
        self.n_features, self.n_outputs = tables.n_features, tables.n_outputs
        self.n_objects = len(objects)

    def _call(self, x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        nf, no = x.shape[1], out.shape[1]
        self._drive(
            _address(x) + start * nf * 4, stop - start, nf, _address(out) + start * no * 8, no, ROW_BLOCK,
            _address(self._fns), len(self._fns), _address(self._leaves),
        )  # fmt: skip

    def raw_scores(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Summed leaf values, float64 ``(n, n_outputs)``, of float32 rows ``x`` (equal to the tables')."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] < self.n_features:
            raise CompileError(
                f"branch code: expected rows of at least {self.n_features} features; got shape {x.shape}."
            )
        x = order_keys(x)
        out = np.zeros((x.shape[0], self.n_outputs), dtype=np.float64)
        if x.shape[0]:
            run_in_row_chunks(lambda a, b: self._call(x, out, a, b), x.shape[0], threads)
        return out


# -- the cache ---------------------------------------------------------------------------------


def _prefix(source_sha: str) -> str:
    return f"iomt_cg_{source_sha[:16]}"


def _cache_paths(directory: Path | None, source_sha: str) -> list[Path]:
    return cache_paths(directory, CODE_FILE, "code", source_sha)


def _pack(objects: list[bytes], header: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    arrays = {f"obj{i}": np.frombuffer(o, dtype=np.uint8) for i, o in enumerate(objects)}
    np.savez(buf, header=np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def _unpack(data: bytes, source: str) -> tuple[dict[str, Any], list[bytes]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            objects = [z[f"obj{i}"].tobytes() for i in range(int(header["objects"]))]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CompileError(f"{source}: not branch code written by iomt-ids ({exc}).") from None
    return header, objects


def _header(tables: TreeTables, source_sha: str, n_objects: int) -> dict[str, Any]:
    return {
        "format": CODE_FORMAT,
        "source_sha256": source_sha,
        "trees": tables.n_trees,
        "nodes": tables.n_nodes,
        "outputs": tables.n_outputs,
        "trees_per_fn": TREES_PER_FN,
        "objects": n_objects,
    }


def load_trusted(
    directory: Path | None, source_sha: str, tables: TreeTables, source: str
) -> BranchCode | None:
    """The cached branch code of the weights ``source_sha``, when this machine compiled it; else None."""
    from iomt_ids.models.llvm_host import host_key

    try:
        host = host_key(CODEGEN_LEVEL)
    except ImportError:
        return None
    trust = TrustStore()
    paths = _cache_paths(directory, source_sha)
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not trust.trusts(sha256_bytes(data), source_sha, CODE_FORMAT, host):
            log.info("%s: not compiled on this machine from %s (no trust record); not loaded.", path, source)
            continue
        try:
            header, objects = _unpack(data, str(path))
            if header != _header(tables, source_sha, len(objects)):
                raise CompileError(f"{path}: compiled for other trees ({header}).")
            return BranchCode(objects, _prefix(source_sha), tables, str(path))
        except CompileError as exc:
            log.warning("%s; scoring with the tables.", exc)
    if directory is not None and fits(tables):
        log.info(
            "%s: no branch code compiled on this machine; 'iomt-ids compile --model %s' makes batch scoring "
            "about 2x faster.", directory, directory,
        )  # fmt: skip
    return None


def compile_and_cache(
    directory: Path | None,
    source_sha: str,
    tables: TreeTables,
    source: str,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> BranchCode:
    """Compile the branch code of ``tables`` (weights ``source_sha``), cache it and trust it; the loaded code.

    Written to the bundle folder, or to the user cache when the folder is read-only.
    Raises CompileError when the ensemble is too large (:func:`fits`) or LLVM fails.
    """
    from iomt_ids.models.llvm_host import host_key

    if not fits(tables):
        raise CompileError(
            f"{source}: {_ops(tables):,} branch operations is over {MAX_OPS:,}; scoring with the tables."
        )
    try:
        host = host_key(CODEGEN_LEVEL)
    except ImportError:
        raise CompileError("branch code needs llvmlite: pip install 'iomt-ids[compiled]'.") from None
    t0 = time.perf_counter()
    prefix = _prefix(source_sha)
    objects = compile_objects(tables, prefix, jobs, progress, source)
    code = BranchCode(objects, prefix, tables, source)  # loads before it is trusted: a bad object fails here
    data = _pack(objects, _header(tables, source_sha, len(objects)))
    store_trusted(_cache_paths(directory, source_sha), directory, data, source_sha, CODE_FORMAT, host)
    log.info(
        "compiled %s to branch code: %d trees in %d objects, %.1f MB (%.1f s, %d jobs)",
        source, tables.n_trees, len(objects), len(data) / 2**20, time.perf_counter() - t0, jobs,
    )  # fmt: skip
    return code
