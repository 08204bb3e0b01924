"""ONNX graphs of the tree models, with the preprocessing folded in (no PyTorch exporter involved).

The graph has the interface of every export (:mod:`iomt_ids.export.onnx`): input
``features`` float64 ``(batch, n_columns)`` of raw rows, output ``probabilities`` float32.
It is built node by node from

1. the bundle's fitted preprocessing, taken from
   :class:`~iomt_ids.export.inference.FoldedPreprocessing` (the same constants the deep
   models' export folds in): ``IsNaN``/``Where`` fill ``Std``/``Variance``, ``IsInf``/
   ``Where`` apply the fitted caps of the rate columns, ``Gather`` keeps the model's
   columns, ``Sub``/``Div`` scale (identity for trees), ``Clip`` and a cast to float32,
   which is what the tree models receive;
2. the trees, from the compiled node tables (:class:`~iomt_ids.models.compiled.TreeTables`),
   compared in float64 against the tables' thresholds (each the largest float32 not above
   the model's own, so float32 rows take the native paths):

   * LightGBM: ``ai.onnx.ml`` ``TreeEnsemble`` (opset 5), leaf values and sums in
     float64, then ``Softmax`` (multiclass) or ``Sigmoid`` (binary) in float64;
   * random forest: ``ai.onnx.ml`` ``TreeEnsembleRegressor`` (opset 3) with one target
     per class, only the non-zero class weights of each leaf, averaged over the trees.

ONNX Runtime's outputs equal ``ModelBundle.predict_proba`` to float32 rounding
(``tests/export/test_onnx_trees.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.artifacts import ModelBundle
from iomt_ids.exceptions import BundleError
from iomt_ids.models.compiled import CompileError, TreeTables

__all__ = ["ML_OPSET_FOREST", "ML_OPSET_LIGHTGBM", "export_tree_onnx", "is_tree_bundle", "tree_graph"]

#: ``ai.onnx.ml`` opsets: TreeEnsemble (float64 leaves and output) and TreeEnsembleRegressor (sparse leaves).
ML_OPSET_LIGHTGBM = 5
ML_OPSET_FOREST = 3


class _Graph:
    """A tiny builder: constants become initializers, every node gets a fresh output name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs))
        return out


def _preprocessing(g: _Graph, bundle: ModelBundle, x: str) -> str:
    """Raw float64 rows -> the tree models' float32 input, as float64 (exact) for the tree operators."""
    from iomt_ids.export.inference import FoldedPreprocessing

    fold = FoldedPreprocessing(bundle.preprocessor)
    buf = {k: v.detach().cpu().numpy() for k, v in fold.named_buffers()}
    nan_fill = g.op("Where", [g.op("And", [g.op("IsNaN", [x], "isnan"), g.const(buf["nan_mask"], "nan_mask")],
                    "nan_cells"), g.const(np.zeros(1), "zero"), x], "filled")  # fmt: skip
    pos = g.op("Where", [g.op("IsInf", [nan_fill], "posinf", detect_negative=0), g.const(buf["hi"], "hi"), nan_fill],
               "capped_hi")  # fmt: skip
    neg = g.op("Where", [g.op("IsInf", [pos], "neginf", detect_positive=0), g.const(buf["lo"], "lo"), pos],
               "capped")  # fmt: skip
    kept = g.op("Gather", [neg, g.const(buf["keep"].astype(np.int64), "keep")], "kept", axis=1)
    if fold.has_log:
        mag = g.op(
            "Log", [g.op("Add", [g.op("Abs", [kept], "abs"), g.const(np.ones(1), "one")], "abs1")], "log"
        )
        logged = g.op("Mul", [g.op("Sign", [kept], "sign"), mag], "signed_log")
        kept = g.op("Where", [g.const(buf["log_mask"], "log_mask"), logged, kept], "logged")
    scaled = g.op("Div", [g.op("Sub", [kept, g.const(buf["mean"], "mean")], "centred"), g.const(buf["std"], "std")],
                  "scaled")  # fmt: skip
    big = float(np.finfo(np.float32).max)  # as Preprocessor.transform: far values clip, never overflow
    clipped = g.op(
        "Clip", [scaled, g.const(np.array(-big), "lo32"), g.const(np.array(big), "hi32")], "clipped"
    )
    from onnx import TensorProto

    as32 = g.op("Cast", [clipped], "rows32", to=TensorProto.FLOAT)
    return g.op("Cast", [as32], "rows", to=TensorProto.DOUBLE)


def _structure(t: TreeTables) -> dict[str, np.ndarray]:
    """Per node of the tables: tree, left/right child, feature, whether it is a leaf."""
    n = t.n_nodes
    idx = np.arange(n)
    tree = np.searchsorted(t.roots.astype(np.int64), idx, side="right") - 1
    leaf = t.info < 0
    off = np.where(leaf, 0, t.info >> 10)
    return {
        "tree": tree,
        "leaf": leaf,
        "left": np.where(leaf, -1, idx + 1),
        "right": np.where(leaf, -1, idx + off),
        "feature": np.where(leaf, 0, t.info & 1023),
        "leaf_index": np.where(leaf, ~t.info, -1),
    }


def _lightgbm_trees(g: _Graph, t: TreeTables, x: str) -> str:
    """``TreeEnsemble`` (ai.onnx.ml 5): float64 raw scores ``(N, n_outputs)``."""
    from onnx import numpy_helper

    s = _structure(t)
    roots = t.roots.astype(np.int64)
    single = roots[s["leaf"][roots]]  # one-leaf trees get a node whose both branches reach the leaf
    inner = np.flatnonzero(~s["leaf"])
    node_id = np.full(t.n_nodes, -1, np.int64)
    node_id[inner] = np.arange(len(inner))
    node_id[single] = len(inner) + np.arange(len(single))
    order = np.concatenate([inner, single])
    is_single = np.concatenate([np.zeros(len(inner), bool), np.ones(len(single), bool)])
    left = np.where(is_single, order, s["left"][order])
    right = np.where(is_single, order, s["right"][order])

    def child(c: np.ndarray) -> tuple[list[int], list[int]]:
        is_leaf = s["leaf"][c]
        return np.where(is_leaf, s["leaf_index"][c], node_id[c]).tolist(), is_leaf.astype(np.int64).tolist()

    true_ids, true_leafs = child(left)
    false_ids, false_leafs = child(right)
    leaf_tree = np.empty(len(t.leaf_values), np.int64)
    leaf_nodes = np.flatnonzero(s["leaf"])
    leaf_tree[s["leaf_index"][leaf_nodes]] = s["tree"][leaf_nodes]
    return g.op(
        "TreeEnsemble",
        [x],
        "raw",
        domain="ai.onnx.ml",
        nodes_featureids=np.where(is_single, 0, s["feature"][order]).tolist(),
        nodes_splits=numpy_helper.from_array(np.where(is_single, 0.0, t.thr[order].astype(np.float64))),
        nodes_modes=numpy_helper.from_array(np.zeros(len(order), np.uint8)),  # BRANCH_LEQ
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leafs,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leafs,
        tree_roots=node_id[roots].tolist(),
        leaf_targetids=t.tree_out[leaf_tree].astype(np.int64).tolist(),
        leaf_weights=numpy_helper.from_array(t.leaf_values[:, 0].astype(np.float64)),
        n_targets=int(t.n_outputs),
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE
    )


def _forest_trees(g: _Graph, t: TreeTables, x: str) -> str:
    """``TreeEnsembleRegressor`` (ai.onnx.ml 3): the trees' mean class distribution ``(N, n_classes)``."""
    from onnx import numpy_helper

    s = _structure(t)
    roots = t.roots.astype(np.int64)
    local = np.arange(t.n_nodes) - roots[s["tree"]]
    leaf = s["leaf"]
    leaf_nodes = np.flatnonzero(leaf)
    vals = t.leaf_values[s["leaf_index"][leaf_nodes]]
    rows, cls = np.nonzero(vals)  # forest leaves are mostly pure: keep the non-zero class weights only
    return g.op(
        "TreeEnsembleRegressor",
        [x],
        "mean",
        domain="ai.onnx.ml",
        n_targets=int(t.n_outputs),
        nodes_treeids=s["tree"].tolist(),
        nodes_nodeids=local.tolist(),
        nodes_featureids=s["feature"].tolist(),
        nodes_modes=np.where(leaf, "LEAF", "BRANCH_LEQ").tolist(),
        nodes_values_as_tensor=numpy_helper.from_array(np.where(leaf, 0.0, t.thr.astype(np.float64))),
        nodes_truenodeids=np.where(leaf, 0, s["left"] - roots[s["tree"]]).tolist(),
        nodes_falsenodeids=np.where(leaf, 0, s["right"] - roots[s["tree"]]).tolist(),
        nodes_missing_value_tracks_true=np.zeros(t.n_nodes, np.int64).tolist(),
        target_treeids=s["tree"][leaf_nodes][rows].tolist(),
        target_nodeids=local[leaf_nodes][rows].tolist(),
        target_ids=cls.tolist(),
        target_weights_as_tensor=numpy_helper.from_array(vals[rows, cls].astype(np.float64)),
        aggregate_function="AVERAGE",
        post_transform="NONE",
    )


def is_tree_bundle(bundle: ModelBundle) -> bool:
    """Whether the bundle's estimator is a tree model with compiled tables (LightGBM, random forest)."""
    return callable(getattr(bundle.estimator, "_build_tables", None))


def tree_graph(bundle: ModelBundle, opset: int = 18) -> Any:
    """The ONNX model (``onnx.ModelProto``) of a tree bundle: raw rows -> probabilities.

    Raises BundleError when the bundle holds no tree model or its trees cannot be
    converted (the reason is named).
    """
    from onnx import TensorProto, helper

    est = bundle.estimator
    if not is_tree_bundle(bundle):
        raise BundleError(f"bundle {bundle.version}: model {bundle.model_name!r} is not a tree model.")
    try:
        tables = est._tables if getattr(est, "_tables", None) is not None else est._build_tables()
    except CompileError as exc:
        raise BundleError(f"bundle {bundle.version}: the trees cannot be exported: {exc}") from None
    g = _Graph()
    rows = _preprocessing(g, bundle, "features")
    if tables.transform == "mean":
        probs = _forest_trees(g, tables, rows)
        ml_opset = ML_OPSET_FOREST
    else:
        raw = _lightgbm_trees(g, tables, rows)
        ml_opset = ML_OPSET_LIGHTGBM
        if tables.scale != 1.0:
            raw = g.op("Mul", [raw, g.const(np.array(tables.scale), "sigmoid_scale")], "scaled_raw")
        if tables.transform == "softmax":
            probs = g.op("Softmax", [raw], "softmax", axis=1)
        else:
            p1 = g.op("Sigmoid", [raw], "sigmoid")
            probs = g.op(
                "Concat", [g.op("Sub", [g.const(np.ones(1), "one"), p1], "p0"), p1], "binary", axis=1
            )
    g.nodes.append(
        helper.make_node("Cast", [probs], ["probabilities"], name="probabilities", to=TensorProto.FLOAT)
    )
    n_cols = len(bundle.input_columns)
    graph = helper.make_graph(
        g.nodes,
        f"iomt_ids_{bundle.model_name}",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, ["batch", n_cols])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(bundle.classes)])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    )
    model.ir_version = min(model.ir_version, 10)  # readable by ONNX Runtime releases from 1.20 on
    return model


def export_tree_onnx(bundle: ModelBundle, out: Path, opset: int = 18) -> Path:
    """Write the graph of :func:`tree_graph` to ``out`` (metadata is added by the caller)."""
    import onnx

    model = tree_graph(bundle, opset)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
