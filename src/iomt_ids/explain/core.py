"""Per-row attributions of a bundle's attack verdict, and the top features behind it.

Every model kind explains the same quantity: how much each preprocessed feature
pushes the row towards its *target* class (the most probable non-benign class,
the category an alert would carry) rather than ``Benign``:

=============== ===================================== ==========================================
model kind      method                                contribution unit
=============== ===================================== ==========================================
lightgbm        exact path-dependent TreeSHAP,        log-odds: raw score of the target class
                ``booster.predict(pred_contrib=True)`` minus raw score of Benign
random_forest   exact interventional TreeSHAP against probability: P(target) - P(Benign)
                a benign reference (:mod:`.treeshap`)
torch (deep)    integrated gradients (captum) from    log-odds: log P(target) - log P(Benign)
                a benign baseline
=============== ===================================== ==========================================

References and baselines: ``baseline`` (raw benign rows, the bundle's input
columns) gives the forest its reference (per-feature median after preprocessing)
and the deep models their IG baseline (mean after preprocessing). Without it, the
deep models start from zeros in the scaled space (the training mean of every
feature) and the forest from an all-zero preprocessed row (an idle window);
LightGBM's TreeSHAP needs no reference (it uses the training covers in the model).

Cost: LightGBM's ``pred_contrib`` explains every class; a multiclass model is explained here
on per-class boosters of the two classes each row needs (the same trees, so the same values,
at 2/``n_classes`` of the work), and repeated rows once. ``benchmarks/results/detect-cpu-lightgbm.json``
shows what explanations cost the detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iomt_ids.exceptions import BundleError

if TYPE_CHECKING:
    from iomt_ids.artifacts import ModelBundle

__all__ = ["Attributions", "attributions", "explain_rows", "format_explanation"]

BENIGN = "Benign"

#: rows per integrated-gradients call (x n_steps interpolation points)
_IG_CHUNK = 256


@dataclass(frozen=True)
class Attributions:
    """Per-feature contributions of n rows towards their target class versus Benign.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n, F)`` contributions, columns in ``features`` order (the bundle's kept columns).
    features : tuple of str
        Names of the preprocessed features (``bundle.preprocessor.kept_columns_``).
    raw : numpy.ndarray
        ``(n, F)`` the rows' raw input values of those features.
    target : numpy.ndarray
        ``(n,)`` object, the target class of every row (most probable non-benign class).
    base : numpy.ndarray
        ``(n,)`` the output at the reference (bias; for IG the output at the baseline).
    output : numpy.ndarray
        ``(n,)`` the explained output at the row; ``base + values.sum(1)`` is close to it.
    unit : str
        ``"log-odds"`` or ``"probability"`` (see the module docstring).
    method : str
        ``"treeshap-path"``, ``"treeshap-interventional"`` or ``"integrated-gradients"``.
    """

    values: np.ndarray
    features: tuple[str, ...]
    raw: np.ndarray
    target: np.ndarray
    base: np.ndarray
    output: np.ndarray
    unit: str
    method: str


def _benign_index(bundle: ModelBundle) -> int:
    classes = list(bundle.classes)
    if BENIGN not in classes:
        raise BundleError(f"explain: classes must include {BENIGN!r}; got {classes}.")
    return classes.index(BENIGN)


def _targets(proba: np.ndarray, benign: int) -> np.ndarray:
    p = np.array(proba, dtype=np.float64, copy=True)
    if p.shape[1] == 1:
        return np.zeros(len(p), dtype=np.int64)
    p[:, benign] = -np.inf
    return p.argmax(axis=1)


def _lightgbm(est: Any, x: np.ndarray, target: np.ndarray, benign: int) -> tuple[np.ndarray, ...]:
    """TreeSHAP from LightGBM itself, for the two classes each row needs (its target and Benign).

    A multiclass model is explained through its per-class boosters
    (:meth:`~iomt_ids.models.trees.LightGBMEstimator.class_booster`: the same trees and
    TreeSHAP, 1/``n_classes`` of the work per class), on the distinct rows only (a flood's
    windows repeat). Each class's ``pred_contrib`` is ``F`` contributions then the bias.
    """
    n, n_feat = x.shape
    xd = np.asarray(x, dtype=np.float64)
    uniq, inverse = np.unique(xd, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if int(est.n_classes) == 2:
        # binary: the single raw score is the log-odds of class 1 versus class 0
        contrib = np.asarray(est.booster.predict(uniq, pred_contrib=True))[inverse]
        sign = np.where(target == benign, 0.0, np.where(target == 1, 1.0, -1.0))
        diff = contrib * sign[:, None]
    else:
        by_class = getattr(est, "class_contributions", None)
        per_class = None
        if by_class is None:  # an estimator without per-class boosters: every class at once
            full = np.asarray(est.booster.predict(uniq, pred_contrib=True))
            per_class = full.reshape(len(uniq), int(est.n_classes), n_feat + 1)

        def contributions(c: int, rows: np.ndarray) -> np.ndarray:
            if per_class is not None:
                return per_class[rows, c]
            return np.asarray(by_class(c, uniq[rows]))

        diff = -contributions(benign, np.arange(len(uniq)))[inverse]
        for c in np.unique(target):
            mask = target == c
            rows = np.unique(inverse[mask], return_inverse=True)
            diff[mask] += contributions(int(c), rows[0])[rows[1].reshape(-1)]
    values, base = diff[:, :n_feat], diff[:, n_feat]
    return values, base, base + values.sum(axis=1)


def _forest(
    est: Any, x: np.ndarray, ref: np.ndarray, target: np.ndarray, benign: int
) -> tuple[np.ndarray, ...]:
    from iomt_ids.explain.treeshap import forest_shap

    phi, base_c = forest_shap(est, x, ref)
    rows = np.arange(len(x))
    values = phi[rows, :, target] - phi[rows, :, benign]
    base = base_c[target] - base_c[benign]
    return values, base, base + values.sum(axis=1)


def _integrated_gradients(
    est: Any, x: np.ndarray, baseline: np.ndarray, target: np.ndarray, benign: int, n_steps: int
) -> tuple[np.ndarray, ...]:
    import torch
    from captum.attr import IntegratedGradients

    module = est.module
    module.eval()
    device = next(module.parameters()).device
    sequence = bool(getattr(module, "sequence_input", False))

    def forward(z: torch.Tensor) -> torch.Tensor:
        logits = module(z.unsqueeze(1) if sequence else z).float()
        logp = torch.log_softmax(logits, dim=1)
        return logp - logp[:, benign : benign + 1]  # log-odds of every class versus Benign

    ig = IntegratedGradients(forward)
    values = np.zeros(x.shape, dtype=np.float64)
    out = np.zeros(len(x))
    base = np.zeros(len(x))
    ref = torch.as_tensor(np.asarray(baseline, dtype=np.float32)).reshape(1, -1).to(device)
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN RNNs refuse backward in eval mode
        for start in range(0, len(x), _IG_CHUNK):
            xt = torch.as_tensor(np.ascontiguousarray(x[start : start + _IG_CHUNK], dtype=np.float32)).to(
                device
            )
            tt = torch.as_tensor(target[start : start + _IG_CHUNK], dtype=torch.long, device=device)
            bt = ref.expand_as(xt).contiguous()
            attr = ig.attribute(xt, baselines=bt, target=tt, n_steps=n_steps)
            values[start : start + len(xt)] = attr.detach().double().cpu().numpy()
            with torch.no_grad():
                rows = torch.arange(len(xt), device=device)
                out[start : start + len(xt)] = forward(xt)[rows, tt].double().cpu().numpy()
                base[start : start + len(xt)] = forward(bt)[rows, tt].double().cpu().numpy()
    return values, base, out


def attributions(
    bundle: ModelBundle,
    raw_rows: pd.DataFrame | np.ndarray,
    baseline: pd.DataFrame | np.ndarray | None = None,
    n_steps: int = 50,
) -> Attributions:
    """Contributions of every kept feature to each row's target class versus Benign.

    Parameters
    ----------
    bundle : ModelBundle
        A LightGBM, random-forest or PyTorch bundle whose classes include ``"Benign"``.
    raw_rows : pandas.DataFrame or numpy.ndarray
        Rows in the bundle's input columns (raw values, as for ``predict_proba``).
    baseline : pandas.DataFrame or numpy.ndarray, optional
        Raw benign reference rows (see the module docstring for the default).
    n_steps : int, default 50
        Integrated-gradients interpolation steps (deep models).

    Returns
    -------
    Attributions
    """
    benign = _benign_index(bundle)
    matrix = bundle._matrix(raw_rows, "explain")
    x = bundle.preprocessor.transform(matrix, "explain")
    features = tuple(bundle.preprocessor.kept_columns_)
    cols = list(bundle.input_columns)
    raw = matrix[:, [cols.index(c) for c in features]]
    if len(x) == 0:
        empty = np.zeros(0)
        return Attributions(np.zeros((0, len(features))), features, raw, np.zeros(0, object), empty, empty,
                            "log-odds", "none")  # fmt: skip
    target = _targets(bundle.estimator.predict_proba(x), benign)
    ref = None if baseline is None else bundle.transform(baseline, "explain baseline").astype(np.float64)
    est = bundle.estimator
    kind = getattr(est, "kind", "")
    if kind == "lightgbm":
        values, base, out = _lightgbm(est, x, target, benign)
        unit, method = "log-odds", "treeshap-path"
    elif kind == "random_forest":
        reference = np.zeros(x.shape[1]) if ref is None or not len(ref) else np.median(ref, axis=0)
        values, base, out = _forest(est, x, reference, target, benign)
        unit, method = "probability", "treeshap-interventional"
    elif hasattr(est, "module"):
        start = np.zeros(x.shape[1]) if ref is None or not len(ref) else ref.mean(axis=0)
        values, base, out = _integrated_gradients(est, x, start, target, benign, n_steps)
        unit, method = "log-odds", "integrated-gradients"
    else:
        raise BundleError(f"explain: no explanation method for estimator kind {kind!r}.")
    names = np.asarray(bundle.classes, dtype=object)[target]
    return Attributions(
        values, features, raw, names, np.asarray(base, float), np.asarray(out, float), unit, method
    )


def _json_value(v: float) -> float | str | None:
    if np.isnan(v):
        return None
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def explain_rows(
    bundle: ModelBundle,
    raw_rows: pd.DataFrame | np.ndarray,
    top: int = 3,
    baseline: pd.DataFrame | np.ndarray | None = None,
) -> list[list[dict[str, Any]]]:
    """For each row, the ``top`` features pushing it most towards its attack class (versus Benign).

    Parameters
    ----------
    bundle : ModelBundle
        The model that scored the rows.
    raw_rows : pandas.DataFrame or numpy.ndarray
        Raw rows in the bundle's input columns (typically the alerting windows).
    top : int, default 3
        Features per row, largest signed contribution first.
    baseline : pandas.DataFrame or numpy.ndarray, optional
        Raw benign reference rows (see :func:`attributions`).

    Returns
    -------
    list of list of dict
        Per row, dicts with ``feature`` (input column name), ``value`` (its raw value;
        None for NaN, ``"inf"``/``"-inf"`` for infinities), ``contribution`` (signed),
        ``target`` (the attack class explained), ``unit`` (``"log-odds"`` or
        ``"probability"``) and ``method``.
    """
    att = attributions(bundle, raw_rows, baseline)
    k = max(0, min(int(top), len(att.features)))
    order = np.argsort(-att.values, axis=1, kind="stable")[:, :k]
    out: list[list[dict[str, Any]]] = []
    for i, idx in enumerate(order):
        out.append([
            {
                "feature": att.features[j],
                "value": _json_value(float(att.raw[i, j])),
                "contribution": float(att.values[i, j]),
                "target": str(att.target[i]),
                "unit": att.unit,
                "method": att.method,
            }
            for j in idx
        ])  # fmt: skip
    return out


def format_explanation(items: list[dict[str, Any]]) -> list[str]:
    """``["syn_flag_number=0.9 (+0.41)", ...]`` from one row of :func:`explain_rows`."""
    texts = []
    for it in items:
        v = it["value"]
        shown = "nan" if v is None else (v if isinstance(v, str) else f"{v:.4g}")
        texts.append(f"{it['feature']}={shown} ({it['contribution']:+.2g})")
    return texts
