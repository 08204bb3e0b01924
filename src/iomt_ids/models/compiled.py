"""Compiled scoring of the tree models: one native kernel for LightGBM boosters and random forests.

Why this design (measured in ``benchmarks/bench_trees.py``, results in
``benchmarks/results/trees-cpu.json``): LightGBM's own ``predict``, ONNX Runtime's
``TreeEnsembleClassifier`` (onnxmltools) and treelite's GTIL all interpret the trees one
row at a time; lleaves 1.3 (LLVM code per tree) no longer builds against llvmlite 0.50
and, patched, had not finished compiling our 1786-tree model after more than 6 CPU-minutes. What
is fast is a small *generic* kernel over compact node tables, evaluated in blocks of
rows times blocks of trees so that the nodes of a tree block stay in cache while
thousands of rows run through them. Branch code generated per tree scores about 2x
faster still, but takes 15-25 CPU-seconds to compile for the 19-class model: it is compiled
once per machine and cached with the same trust design (:mod:`iomt_ids.models.codegen`),
and these tables score wherever it is absent (a bundle from another machine, few rows).

How it stays safe
-----------------
* **This module loads no code from a file.** The kernel is LLVM IR written in this module
  and compiled in memory with llvmlite each time a process first scores (tens of ms).
  What it caches is **data**: :class:`TreeTables` (node thresholds, packed
  feature/child words, leaf values) in ``compiled-trees.npz`` beside the weights,
  read with ``np.load(allow_pickle=False)``. A ``.so`` or any other file in a bundle
  folder is never opened (the branch code's object files are loaded by
  :mod:`iomt_ids.models.codegen`, only under a trust record naming this CPU).
* **A checked hash, trusted only if this machine wrote it.** A cached table is used only
  when its SHA-256 has a *trust record* in this user's cache folder
  (``$IOMT_IDS_CACHE_DIR`` or ``$XDG_CACHE_HOME/iomt-ids``, private to the user) that
  this machine wrote when it built the table, naming the SHA-256 of the weights file it
  was built from. A table copied in from elsewhere, edited, flipped, or left over from
  other weights has no such record and is rebuilt from the weights (then trusted).
* **Every table is bounds-checked before the kernel sees it** (:meth:`TreeTables.validate`):
  roots, children, feature indices, leaf indices and output columns must lie inside
  their arrays, and every step of a walk moves to a strictly larger node index, so a
  walk ends at a leaf within the table.
* The cache is not a weights file: it is not named in ``bundle.json``'s
  :data:`~iomt_ids.models.base.WEIGHT_FIELDS`, so the bundle's version id does not change.

Exactness
---------
The estimators receive the preprocessor's float32 rows. A split ``x <= t`` with a float64
threshold ``t`` is the same test as ``x <= t32`` where ``t32`` is the largest float32
not above ``t`` (what :func:`_floor_float32` stores), so every row takes the same path as
in LightGBM or scikit-learn. Leaf values are summed in float64 in tree order, as both
libraries do, and the output transform (softmax, sigmoid, forest mean) is applied in
float64: probabilities agree with the native models to float32 rounding. Rows the
kernel would not treat exactly (NaN cells, float64 values that are not float32 numbers)
are scored by the native model instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.exceptions import BundleError
from iomt_ids.models.base import sha256_file

__all__ = [
    "CACHE_ENV",
    "CACHE_FILE",
    "STATS",
    "CompileError",
    "TreeTables",
    "TrustStore",
    "cache_paths",
    "kernel_status",
    "load_or_build",
    "sha256_bytes",
    "sha256_file",
    "store_trusted",
    "tables_from_forest",
    "tables_from_lightgbm",
    "user_cache_dir",
]

log = logging.getLogger(__name__)

#: Environment variable naming the user cache folder (trust records, tables of read-only bundles).
CACHE_ENV = "IOMT_IDS_CACHE_DIR"
#: File name of the cached tables inside a bundle folder (fixed: never read from bundle.json).
CACHE_FILE = "compiled-trees.npz"
#: Format tag stored in the tables and in each trust record; bump when the layout changes.
TABLES_FORMAT = "iomt-ids-tree-tables/1"

#: Bits of a node word that hold the feature index; the rest (less the sign) the right-child offset.
_FEAT_BITS = 10
_MAX_FEATURES = 1 << _FEAT_BITS
_MAX_OFFSET = (1 << (31 - _FEAT_BITS)) - 1
#: Rows per block of the kernel, and the most trees per block (``benchmarks/bench_trees.py --tune``):
#: larger blocks won on the 19-class LightGBM model (1786 trees of ~120 nodes).
ROW_BLOCK = 16384
TREE_BLOCK = 32
#: Nodes per tree block (about 770 kB of node words): the forest's deep trees (~10 k nodes each)
#: run fastest in blocks of ~8 trees, measured on the sample model.
NODE_BUDGET = 96_000
#: Below this many rows a call runs on one thread (thread hand-off costs more than it saves).
MIN_ROWS_PER_THREAD = 2048

#: Counters for tests and benchmarks: tables built, loaded from a trusted cache, and caches rejected.
STATS: dict[str, int] = {"built": 0, "loaded": 0, "rejected": 0, "kernels": 0}

_TRANSFORMS = ("softmax", "sigmoid", "mean", "none")


class CompileError(BundleError):
    """A model the compiled backend cannot score exactly, or a kernel that cannot be built here."""


# -- tables ---------------------------------------------------------------------------------


def _floor_float32(t: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 ``t``: ``x <= t`` iff ``x <= result`` for float32 ``x``."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = t.astype(np.float32)
    above = f.astype(np.float64) > t
    f[above] = np.nextafter(f[above], np.float32(-np.inf))
    return f


@dataclass
class TreeTables:
    """A tree ensemble as compact, pre-ordered node tables.

    Attributes
    ----------
    thr : float32 (n_nodes,)
        Split threshold of each internal node (see :func:`_floor_float32`); unused at leaves.
    info : int32 (n_nodes,)
        Internal node: ``feature | right_offset << 10`` (the left child is the next node,
        the right child ``right_offset`` nodes further). Leaf: ``~leaf_index`` (negative).
    roots : int32 (n_trees,)
        First node of each tree.
    tree_out : int32 (n_trees,)
        First output column each tree's leaf values add to.
    leaf_values : float32 or float64 (n_leaves, width)
        What a leaf adds to columns ``tree_out .. tree_out + width``.
    n_features, n_outputs : int
        Input width and number of output columns.
    transform : {"softmax", "sigmoid", "mean", "none"}
        Raw scores -> probabilities: a softmax, LightGBM's sigmoid of ``scale`` times the
        raw score, or the mean over the trees (the raw sums divided by ``n_trees``).
    binary : bool
        One raw score whose sigmoid is P(class 1): the output gets both columns.
    """

    thr: np.ndarray
    info: np.ndarray
    roots: np.ndarray
    tree_out: np.ndarray
    leaf_values: np.ndarray
    n_features: int
    n_outputs: int
    transform: str
    scale: float = 1.0
    binary: bool = False

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_nodes(self) -> int:
        return len(self.info)

    @property
    def n_classes(self) -> int:
        return 2 if self.binary else self.n_outputs

    # -- checks ------------------------------------------------------------------------
    def validate(self, source: str = "compiled trees") -> TreeTables:
        """Check dtypes, shapes and every index the kernel follows; CompileError naming ``source`` otherwise."""

        def bad(what: str) -> CompileError:
            return CompileError(f"{source}: tree tables are inconsistent: {what}.")

        for name, arr, dtype in (
            ("thr", self.thr, np.float32),
            ("info", self.info, np.int32),
            ("roots", self.roots, np.int32),
            ("tree_out", self.tree_out, np.int32),
        ):
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                raise bad(f"{name} must be a 1-D {np.dtype(dtype).name} array")
            if not arr.flags.c_contiguous:  # the kernel reads it by address
                raise bad(f"{name} must be contiguous")
        lv = self.leaf_values
        if not isinstance(lv, np.ndarray) or lv.dtype not in (np.float32, np.float64) or lv.ndim != 2:
            raise bad("leaf_values must be a 2-D float32 or float64 array")
        if not lv.flags.c_contiguous:
            raise bad("leaf_values must be contiguous")
        n, width = len(self.info), lv.shape[1]
        if len(self.thr) != n or n == 0 or len(self.roots) == 0 or len(self.tree_out) != len(self.roots):
            raise bad("thr/info and roots/tree_out must have matching, non-zero lengths")
        if width < 1 or not 1 <= self.n_features <= _MAX_FEATURES or self.n_outputs < 1:
            raise bad(f"width {width}, {self.n_features} features, {self.n_outputs} outputs")
        if self.transform not in _TRANSFORMS or not np.isfinite(self.scale):
            raise bad(
                f"transform {self.transform!r} (expected one of {list(_TRANSFORMS)}), scale {self.scale}"
            )
        if self.binary and (self.n_outputs != 1 or self.transform != "sigmoid"):
            raise bad("a binary model has one output column and a sigmoid transform")
        if ((self.roots < 0) | (self.roots >= n)).any():
            raise bad("a tree root lies outside the node table")
        if ((self.tree_out < 0) | (self.tree_out.astype(np.int64) + width > self.n_outputs)).any():
            raise bad("a tree adds to output columns that do not exist")
        inner = self.info >= 0
        idx = np.flatnonzero(inner)
        feat = self.info[inner] & (_MAX_FEATURES - 1)
        off = self.info[inner] >> _FEAT_BITS
        if (feat >= self.n_features).any():
            raise bad(f"a split reads a feature >= {self.n_features}")
        # left child idx + 1, right child idx + off: both inside the table and strictly after the node
        if (off < 1).any() or (idx + 1 >= n).any() or (idx.astype(np.int64) + off >= n).any():
            raise bad("a child lies outside the node table")
        leaves = ~self.info[~inner]
        if (leaves >= len(lv)).any():
            raise bad("a leaf index lies outside leaf_values")
        return self

    # -- persistence (data only) -------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The tables as a compressed ``.npz`` (plain arrays and one JSON header; no pickle)."""
        header = {
            "format": TABLES_FORMAT,
            "n_features": int(self.n_features),
            "n_outputs": int(self.n_outputs),
            "transform": self.transform,
            "scale": float(self.scale),
            "binary": bool(self.binary),
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            header=np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8),
            thr=self.thr,
            info=self.info,
            roots=self.roots,
            tree_out=self.tree_out,
            leaf_values=self.leaf_values,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> TreeTables:
        """Tables from :meth:`to_bytes` output, validated; CompileError naming ``source`` when unreadable."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("header", "thr", "info", "roots", "tree_out", "leaf_values")}
            header = json.loads(arrays.pop("header").tobytes().decode())
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CompileError(f"{source}: not tree tables written by iomt-ids ({exc}).") from None
        if not isinstance(header, dict) or header.get("format") != TABLES_FORMAT:
            raise CompileError(f"{source}: format is not {TABLES_FORMAT!r}.")
        try:
            tables = cls(
                **arrays,
                n_features=int(header["n_features"]),
                n_outputs=int(header["n_outputs"]),
                transform=str(header["transform"]),
                scale=float(header["scale"]),
                binary=bool(header["binary"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CompileError(f"{source}: header field missing or invalid ({exc}).") from None
        return tables.validate(source)

    # -- scoring -----------------------------------------------------------------------
    def raw_scores(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Summed leaf values, float64 ``(n, n_outputs)``, of float32 rows ``x`` ``(n, n_features)``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] < self.n_features:
            raise CompileError(
                f"compiled trees: expected rows of at least {self.n_features} features; got shape {x.shape}."
            )
        out = np.zeros((x.shape[0], self.n_outputs), dtype=np.float64)
        if x.shape[0]:
            _kernel(self.leaf_values.shape[1], self.leaf_values.dtype == np.float32).run(
                x, self, out, threads
            )
        return out

    def predict_proba(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Class probabilities, float32 ``(n, n_classes)``, as the native model computes them."""
        return self.probabilities(self.raw_scores(x, threads))

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores (float64, overwritten) -> class probabilities, float32 ``(n, n_classes)``."""
        if self.transform == "mean":
            raw /= self.n_trees  # as the forest divides (not times 1/n: that can differ in the last bit)
        elif self.scale != 1.0:
            raw *= self.scale
        if self.transform == "softmax":
            raw -= raw.max(axis=1, keepdims=True)
            np.exp(raw, out=raw)
            raw /= raw.sum(axis=1, keepdims=True)
        elif self.transform == "sigmoid":
            raw = 1.0 / (1.0 + np.exp(-raw))
        if self.binary:
            raw = np.column_stack([1.0 - raw[:, 0], raw[:, 0]])
        return raw.astype(np.float32)


# -- building tables -----------------------------------------------------------------------


def _pack(
    feature: np.ndarray, right_offset: np.ndarray, is_leaf: np.ndarray, leaf_index: np.ndarray, source: str
) -> np.ndarray:
    """Node words of a pre-ordered table (see :class:`TreeTables`)."""
    inner = ~is_leaf
    if (feature[inner] >= _MAX_FEATURES).any() or (feature[inner] < 0).any():
        raise CompileError(f"{source}: a split uses a feature index outside 0..{_MAX_FEATURES - 1}.")
    if (right_offset[inner] > _MAX_OFFSET).any():
        raise CompileError(f"{source}: a tree is too large for the compiled tables ({_MAX_OFFSET} nodes).")
    info = np.where(
        is_leaf,
        ~leaf_index.astype(np.int64),
        feature.astype(np.int64) | (right_offset.astype(np.int64) << _FEAT_BITS),
    )
    return info.astype(np.int32)


def _preorder(left: list[int], right: list[int], root: int) -> list[int]:
    """Node ids of one tree in pre-order (left subtree first); children < 0 are leaves ``~leaf``."""
    order: list[int] = []
    stack = [root]
    while stack:
        v = stack.pop()
        order.append(v)
        if v >= 0:
            stack.append(right[v])
            stack.append(left[v])
    return order


_KV = re.compile(r"^([a-z_]+)=(.*)$")


def tables_from_lightgbm(model_text: str, n_features: int, source: str = "lightgbm.txt") -> TreeTables:
    """Tables of a LightGBM model from its text format (``Booster.model_to_string()``).

    Supported: binary (sigmoid) and multiclass (softmax) objectives, numerical splits
    with missing type None or NaN (the rows scored never hold NaN: see the module
    docstring). Categorical splits, linear trees, ``zero_as_missing`` splits and other
    objectives raise CompileError naming ``source`` (the native model is used then).
    """
    lines = model_text.splitlines()
    first_tree = next((k for k, line in enumerate(lines) if line.startswith("Tree=")), len(lines))
    if "average_output" in lines[:first_tree]:
        raise CompileError(f"{source}: random-forest mode (average_output) is not supported.")
    head: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in lines:
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
            continue
        if line == "end of trees":
            break
        m = _KV.match(line)
        if m:
            (current if current is not None else head)[m.group(1)] = m.group(2)
    if not trees:
        raise CompileError(f"{source}: no trees in the LightGBM model text.")
    objective = head.get("objective", "").split()
    per_iter = int(head.get("num_tree_per_iteration", "1"))
    n_class = int(head.get("num_class", "1"))
    if not objective:
        raise CompileError(f"{source}: the model names no objective.")
    if objective[0] == "multiclass" and per_iter == n_class > 1:
        transform, scale, n_out, binary = "softmax", 1.0, n_class, False
    elif objective[0] == "binary" and per_iter == 1:
        params = dict(p.split(":", 1) for p in objective[1:] if ":" in p)
        transform, scale, n_out, binary = "sigmoid", float(params.get("sigmoid", "1")), 1, True
    else:
        raise CompileError(f"{source}: objective {' '.join(objective)!r} is not binary or multiclass.")
    max_feature = int(head.get("max_feature_idx", "-1"))
    if max_feature >= n_features:
        raise CompileError(f"{source}: model reads feature {max_feature}; rows have {n_features}.")

    thr_all: list[np.ndarray] = []
    info_all: list[np.ndarray] = []
    leaves_all: list[np.ndarray] = []
    roots: list[int] = []
    n_nodes = n_leaves = 0
    for k, t in enumerate(trees):
        n_leaf = int(t.get("num_leaves", "0"))
        if int(t.get("num_cat", "0")) or t.get("is_linear", "0") not in ("0", ""):
            raise CompileError(f"{source}: tree {k} has categorical or linear splits.")
        leaf_value = np.array(t.get("leaf_value", "").split(), dtype=np.float64)
        if len(leaf_value) != n_leaf or n_leaf < 1:
            raise CompileError(f"{source}: tree {k}: leaf_value has {len(leaf_value)} values, not {n_leaf}.")
        roots.append(n_nodes)
        if n_leaf == 1:
            order = [-1]
            feat_pre = np.zeros(1, np.int64)
            thr_pre = np.zeros(1, np.float64)
            right_off = np.zeros(1, np.int64)
        else:
            feat = np.array(t["split_feature"].split(), dtype=np.int64)
            thr = np.array(t["threshold"].split(), dtype=np.float64)
            dtype = np.array(t["decision_type"].split(), dtype=np.int64)
            left = [int(v) for v in t["left_child"].split()]
            right = [int(v) for v in t["right_child"].split()]
            if not len(feat) == len(thr) == len(dtype) == len(left) == len(right) == n_leaf - 1:
                raise CompileError(f"{source}: tree {k}: split arrays do not have {n_leaf - 1} entries.")
            if (dtype & 1).any() or ((dtype >> 2) & 3 == 1).any():
                raise CompileError(f"{source}: tree {k} has categorical or zero-as-missing splits.")
            order = _preorder(left, right, 0)
            pos = {v: i for i, v in enumerate(order)}
            inner = np.array([v >= 0 for v in order])
            ids = np.array([max(v, 0) for v in order])
            feat_pre = np.where(inner, feat[ids], 0)
            thr_pre = np.where(inner, thr[ids], 0.0)
            right_off = np.array([pos[right[v]] - i if v >= 0 else 0 for i, v in enumerate(order)])
        is_leaf = np.array([v < 0 for v in order])
        leaf_ids = np.array([~v if v < 0 else 0 for v in order])
        info_all.append(_pack(feat_pre, right_off, is_leaf, leaf_ids + n_leaves, source))
        thr_all.append(np.where(is_leaf, 0.0, thr_pre))
        leaves_all.append(leaf_value)
        n_nodes += len(order)
        n_leaves += n_leaf
    thr32 = _floor_float32(np.concatenate(thr_all))
    return TreeTables(
        thr=thr32,
        info=np.concatenate(info_all).astype(np.int32),
        roots=np.asarray(roots, dtype=np.int32),
        tree_out=(np.arange(len(trees)) % per_iter).astype(np.int32),
        leaf_values=np.concatenate(leaves_all)[:, None],
        n_features=n_features,
        n_outputs=n_out,
        transform=transform,
        scale=scale,
        binary=binary,
    ).validate(source)


def tables_from_forest(
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    n_features: int,
    source: str = "forest.npz",
) -> TreeTables:
    """Tables of a forest stored as flat node arrays (``-1`` children at leaves; see ``ForestEstimator``).

    The probability is the mean of the leaves' class distributions. scikit-learn builds
    trees depth first, so nodes are already in pre-order (left child = next node) and the
    tables are made without a loop; any other order is re-ordered tree by tree.
    """
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    roots = np.asarray(roots, np.int64)
    n = len(left)
    is_leaf = left < 0
    idx = np.arange(n)
    inner = ~is_leaf
    ends = np.append(roots[1:], n)
    ordered = bool(
        len(roots)
        and roots[0] == 0
        and (np.diff(roots) > 0).all()
        and (left[inner] == idx[inner] + 1).all()
        and (right[inner] > idx[inner]).all()
        and (right[inner] < np.repeat(ends, np.diff(np.append(roots, n)))[inner]).all()
    )
    if not ordered:
        perm = np.concatenate(
            [
                np.asarray(_preorder_global(left, right, int(r)), dtype=np.int64)
                for r in roots  # a slow path: iomt-ids' own forests never take it
            ]
        )
        if len(perm) != n or len(np.unique(perm)) != n:
            raise CompileError(f"{source}: the forest's trees share or skip nodes.")
        new = np.empty(n, np.int64)
        new[perm] = np.arange(n)
        left = np.where(is_leaf[perm], -1, new[np.maximum(left[perm], 0)])
        right = np.where(is_leaf[perm], -1, new[np.maximum(right[perm], 0)])
        feature, threshold, value = np.asarray(feature)[perm], np.asarray(threshold)[perm], value[perm]
        roots = new[roots]
        is_leaf = left < 0
    leaf_index = np.cumsum(is_leaf) - 1
    info = _pack(np.asarray(feature, np.int64), right - idx, is_leaf, leaf_index, source)
    vals = np.asarray(value)[is_leaf]
    leaf_values = vals.astype(np.float32) if vals.dtype == np.float32 else vals.astype(np.float64)
    return TreeTables(
        thr=np.where(is_leaf, np.float32(0), _floor_float32(np.where(is_leaf, 0.0, threshold))),
        info=info,
        roots=roots.astype(np.int32),
        tree_out=np.zeros(len(roots), np.int32),
        leaf_values=np.ascontiguousarray(leaf_values),
        n_features=n_features,
        n_outputs=leaf_values.shape[1],
        transform="mean",
    ).validate(source)


def _preorder_global(left: np.ndarray, right: np.ndarray, root: int) -> list[int]:
    order: list[int] = []
    stack = [root]
    while stack:
        v = stack.pop()
        order.append(v)
        if left[v] >= 0:
            stack.append(int(right[v]))
            stack.append(int(left[v]))
    return order


# -- the kernel ------------------------------------------------------------------------------

# One function per leaf width (1 for LightGBM, n_classes for a forest) and leaf dtype; the loops:
#   for each block of ROW_BLOCK rows, for each block of TREE_BLOCK trees, for each row, for each tree:
#     i = root; while info[i] >= 0: i += x[info[i] & 1023] > thr[i] ? info[i] >> 10 : 1
#     out[row, tree_out[t] .. + width] += leaf_values[~info[i]]
_IR = r"""
define void @iomt_tree_scores(ptr noalias nocapture readonly %X, i64 %n, i64 %nfeat,
    ptr noalias nocapture readonly %thr, ptr noalias nocapture readonly %info,
    ptr noalias nocapture readonly %roots, i64 %ntrees, ptr noalias nocapture readonly %tree_out,
    ptr noalias nocapture readonly %leafval, i64 %nout, ptr noalias nocapture %out,
    i64 %rb, i64 %tb) nounwind {
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
  %r = phi i64 [%r0, %tblock], [%r.next, %row.end]
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
  %infop0 = getelementptr inbounds i32, ptr %info, i64 %root64
  %inf0 = load i32, ptr %infop0
  %isleaf0 = icmp slt i32 %inf0, 0
  br i1 %isleaf0, label %leaf, label %walk

walk:
  %i = phi i64 [%root64, %tree], [%i.next, %walk]
  %inf = phi i32 [%inf0, %tree], [%inf.next, %walk]
  %f = and i32 %inf, 1023
  %f64 = zext i32 %f to i64
  %xp = getelementptr inbounds float, ptr %xrow, i64 %f64
  %xv = load float, ptr %xp
  %thp = getelementptr inbounds float, ptr %thr, i64 %i
  %th = load float, ptr %thp
  %gt = fcmp ogt float %xv, %th
  %roff = lshr i32 %inf, 10
  %roff64 = zext i32 %roff to i64
  %step = select i1 %gt, i64 %roff64, i64 1
  %i.next = add i64 %i, %step
  %infp = getelementptr inbounds i32, ptr %info, i64 %i.next
  %inf.next = load i32, ptr %infp
  %more = icmp sge i32 %inf.next, 0
  br i1 %more, label %walk, label %leaf

leaf:
  %linf = phi i32 [%inf0, %tree], [%inf.next, %walk]
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

tree.end:
  %t.next = add i64 %t, 1
  %tmore = icmp slt i64 %t.next, %t1
  br i1 %tmore, label %tree, label %row.end

row.end:
  %r.next = add i64 %r, 1
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
}
"""

_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURE = ctypes.CFUNCTYPE(None, _P, _I, _I, _P, _P, _P, _I, _P, _P, _I, _P, _I, _I)


class _Kernel:
    """The JIT-compiled scoring function for one leaf width and leaf dtype (compiled in memory)."""

    def __init__(self, width: int, leaf_float32: bool) -> None:
        from iomt_ids.models.llvm_host import llvm as native_llvm
        from iomt_ids.models.llvm_host import native_target_machine

        llvm = native_llvm()
        ltype = "float" if leaf_float32 else "double"
        load = (
            "  %v.raw = load float, ptr %lvw\n  %v = fpext float %v.raw to double"
            if leaf_float32
            else "  %v = load double, ptr %lvw"
        )
        ir = _IR.replace("LOAD_LEAF", load).replace("WIDTH", str(int(width))).replace("LTYPE", ltype)
        self._tm = native_target_machine(3)
        module = llvm.parse_assembly(ir)
        module.verify()
        _optimize(llvm, module, self._tm)
        self._engine = llvm.create_mcjit_compiler(module, self._tm)
        self._engine.finalize_object()
        self._fn = _SIGNATURE(self._engine.get_function_address("iomt_tree_scores"))
        self.width = width
        STATS["kernels"] += 1

    def _call(self, x: np.ndarray, t: TreeTables, out: np.ndarray, start: int, stop: int) -> None:
        n_feat, n_out = x.shape[1], out.shape[1]
        thr, info, roots, n_trees, tree_out, leaf_values, tree_block = _table_args(t)
        self._fn(
            _address(x) + start * n_feat * 4,
            stop - start,
            n_feat,
            thr,
            info,
            roots,
            n_trees,
            tree_out,
            leaf_values,
            n_out,
            _address(out) + start * n_out * 8,
            ROW_BLOCK,
            tree_block,
        )

    def run(self, x: np.ndarray, t: TreeTables, out: np.ndarray, threads: int) -> None:
        """Add the leaf values of ``t`` for rows ``x`` into ``out`` (zeroed, C-contiguous float64)."""
        run_in_row_chunks(lambda a, b: self._call(x, t, out, a, b), x.shape[0], threads)


def run_in_row_chunks(call: Callable[[int, int], None], n: int, threads: int) -> None:
    """``call(start, stop)`` over ``n`` rows, split into one chunk per thread (one thread for few rows).

    The calls go through ctypes, which releases the GIL: the chunks run in parallel.
    """
    threads = max(1, min(int(threads), n // MIN_ROWS_PER_THREAD))
    if threads == 1:
        call(0, n)
        return
    bounds = np.linspace(0, n, threads + 1).astype(int)
    futures = [
        _pool(threads).submit(call, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    for f in futures:
        f.result()


def _address(a: np.ndarray) -> int:
    """The data address of ``a`` (cheaper than ``a.ctypes.data``, which a one-row call feels)."""
    return int(a.__array_interface__["data"][0])


def _table_args(t: TreeTables) -> tuple[int, ...]:
    """The kernel's table arguments of ``t``, worked out once per tables object.

    The addresses stay valid while ``t`` holds its arrays: the cache lives on ``t`` and
    records the arrays it was taken from, so replacing an array recomputes it.
    """
    arrays = (t.thr, t.info, t.roots, t.tree_out, t.leaf_values)
    cached = t.__dict__.get("_kernel_args")
    if cached is None or any(a is not b for a, b in zip(cached[0], arrays, strict=True)):
        tree_block = max(2, min(TREE_BLOCK, NODE_BUDGET * t.n_trees // max(t.n_nodes, 1)))
        thr, info, roots, tree_out, leaf_values = (_address(a) for a in arrays)
        args = (thr, info, roots, t.n_trees, tree_out, leaf_values, tree_block)
        cached = (arrays, args)
        t.__dict__["_kernel_args"] = cached
    return cached[1]


def _optimize(llvm: Any, module: Any, tm: Any) -> None:
    """Run LLVM's -O3 pipeline (new pass manager; the legacy one on older llvmlite)."""
    if hasattr(llvm, "create_pass_builder"):
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(module, pb)
    elif hasattr(llvm, "PassManagerBuilder"):  # llvmlite < 0.45
        pmb = llvm.PassManagerBuilder()
        pmb.opt_level = 3
        pm = llvm.ModulePassManager()
        pmb.populate(pm)
        pm.run(module)


_KERNELS: dict[tuple[int, bool], _Kernel] = {}
_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_KERNEL_ERROR: list[str] = []


def _pool(threads: int) -> ThreadPoolExecutor:
    with _LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="iomt-trees")
        return _POOLS[threads]


def _kernel(width: int, leaf_float32: bool) -> _Kernel:
    key = (int(width), bool(leaf_float32))
    kernel = _KERNELS.get(key)
    if kernel is not None:
        return kernel
    with _LOCK:
        if key not in _KERNELS:
            try:
                _KERNELS[key] = _Kernel(*key)
            except ImportError:
                raise CompileError(
                    "the compiled tree backend needs llvmlite: pip install 'iomt-ids[compiled]'."
                ) from None
            except Exception as exc:  # llvmlite raises RuntimeError and others on a bad target
                raise CompileError(f"the compiled tree kernel could not be built here: {exc}") from None
        return _KERNELS[key]


def kernel_status() -> tuple[bool, str]:
    """Whether the kernel can be built in this process, and why not (empty when it can)."""
    if _KERNEL_ERROR:
        return False, _KERNEL_ERROR[0]
    try:
        _kernel(1, False)
    except CompileError as exc:
        _KERNEL_ERROR.append(str(exc))
        return False, str(exc)
    return True, ""


# -- cache and trust ----------------------------------------------------------------------------


def user_cache_dir() -> Path:
    """``$IOMT_IDS_CACHE_DIR``, else ``$XDG_CACHE_HOME/iomt-ids``, else ``~/.cache/iomt-ids``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "iomt-ids"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _private_dir(path: Path) -> Path | None:
    """``path`` created with mode 0700; None when it is not this user's or others may write to it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        log.debug("cache folder %s unusable: %s", path, exc)
        return None
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        log.warning("%s is not a private folder of this user; compiled tree tables are not cached.", path)
        return None
    return path


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TrustStore:
    """Records of what this machine built: ``<cache>/trusted/<sha256 of the artifact's bytes>``.

    A record names the SHA-256 of the weights file the artifact (tables, or branch code:
    :mod:`iomt_ids.models.codegen`) was built from, its format and, for machine code, the
    host it was compiled for. Only :func:`load_or_build` and the code cache write records,
    right after they built the artifact themselves; a record never arrives with a bundle.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or user_cache_dir()) / "trusted"

    def _path(self, artifact_sha: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", artifact_sha):
            raise CompileError(f"trust store: {artifact_sha!r} is not a SHA-256 hex digest.")
        return self.root / artifact_sha

    def trusts(
        self, artifact_sha: str, source_sha: str, fmt: str = TABLES_FORMAT, host: dict[str, str] | None = None
    ) -> bool:
        """Whether this machine built the artifact ``artifact_sha`` (format ``fmt``) from the weights ``source_sha``.

        ``host`` (machine code only: the CPU and LLVM it was compiled for) must equal the record's.
        """
        if _private_dir(self.root) is None:
            return False
        try:
            record = json.loads(self._path(artifact_sha).read_text())
        except (OSError, ValueError):
            return False
        return (
            isinstance(record, dict)
            and record.get("source_sha256") == source_sha
            and record.get("format") == fmt
            and record.get("host") == host
        )

    def add(
        self, artifact_sha: str, source_sha: str, fmt: str = TABLES_FORMAT, host: dict[str, str] | None = None
    ) -> bool:
        """Record that this machine built ``artifact_sha`` from ``source_sha``; False when it cannot."""
        if _private_dir(self.root) is None:
            return False
        record = {
            "source_sha256": source_sha,
            "format": fmt,
            "host": host,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            _write_atomic(self._path(artifact_sha), json.dumps(record).encode(), mode=0o600)
        except OSError as exc:
            log.debug("trust record for %s not written: %s", artifact_sha, exc)
            return False
        return True


def cache_paths(directory: Path | None, file_name: str, kind: str, source_sha: str) -> list[Path]:
    """Where an artifact of the weights ``source_sha`` is cached, in order: the bundle folder, the user cache."""
    paths = [directory / file_name] if directory is not None else []
    return [*paths, user_cache_dir() / kind / f"{source_sha}.npz"]


def store_trusted(
    paths: list[Path],
    directory: Path | None,
    data: bytes,
    source_sha: str,
    fmt: str = TABLES_FORMAT,
    host: dict[str, str] | None = None,
) -> Path | None:
    """Write ``data`` to the first writable of ``paths`` and trust it; the path, or None where none was.

    A path outside the bundle folder is used only inside a private folder of this user.
    """
    for path in paths:
        if path.parent != directory and _private_dir(path.parent) is None:
            continue
        try:
            _write_atomic(path, data)
        except OSError as exc:
            log.debug("%s not cached at %s: %s", fmt, path, exc)
            continue
        TrustStore().add(sha256_bytes(data), source_sha, fmt, host)
        return path
    return None


def load_or_build(
    directory: Path | None,
    source_sha: str,
    source_name: str,
    build: Callable[[], TreeTables],
    tables: TreeTables | None = None,
) -> TreeTables:
    """The compiled tables of the weights whose bytes hash to ``source_sha``, from a trusted cache or built.

    Looks for ``directory/compiled-trees.npz`` (the bundle folder), then the user cache
    (``<cache>/tables/<source_sha>.npz``). A cached file is used only when the SHA-256 of
    its bytes has a trust record naming ``source_sha``; the bytes that were hashed are the
    bytes parsed (no second read). Otherwise the tables are built (``build()``, or
    ``tables`` when the caller has them already), written to the bundle folder (or, when
    that is read-only, to the user cache) and trusted. ``source_name`` names the weights
    file in messages.
    """
    trust = TrustStore()
    paths = cache_paths(directory, CACHE_FILE, "tables", source_sha)
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if trust.trusts(sha256_bytes(data), source_sha):
            try:
                loaded = TreeTables.from_bytes(data, str(path))
            except CompileError as exc:
                log.warning("%s; rebuilding it.", exc)
            else:
                STATS["loaded"] += 1
                return loaded
        STATS["rejected"] += 1
        log.info("%s: not built on this machine from %s (no trust record); rebuilding it.", path, source_name)
    if tables is None:
        t0 = time.perf_counter()
        tables = build()
        STATS["built"] += 1
        log.info("compiled %s: %d trees, %d nodes (%.2fs)", source_name, tables.n_trees, tables.n_nodes,
                 time.perf_counter() - t0)  # fmt: skip
    store_trusted(paths, directory, tables.to_bytes(), source_sha)
    return tables
