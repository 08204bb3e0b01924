"""Exact interventional TreeSHAP for the NumPy random forest (:class:`ForestEstimator`).

The forest's node arrays keep each node's class distribution but not how many
training rows reached it (the *cover*), so path-dependent TreeSHAP (which weighs
both branches of a split by their covers) cannot be run on them. This module
computes the *interventional* Shapley values of Lundberg et al. (2020, "From local
explanations to global understanding with explainable AI for trees", Algorithm
"Independent TreeSHAP") against one or more reference rows ``r``:

    v(S) = f(x_S, r_{not S})    (features in S take the row's values, others the reference's)

which are exact Shapley values of that game. For one tree and one reference the
algorithm walks the tree once: where ``x`` and ``r`` take the same branch it goes
on; where they part on feature ``j`` the walk splits into an "``j`` in S" branch
(follows ``x``) and an "``j`` not in S" branch (follows ``r``); a feature met again
follows the side already chosen. A leaf with value ``v`` reached with the set ``A``
of features that must be in S and the set ``B`` that must not is the game
``v * 1[A <= S, B & S = {}]``, whose Shapley values are
``+v (|A|-1)! |B|! / (|A|+|B|)!`` for ``j`` in ``A`` and ``-v |A|! (|B|-1)! / (|A|+|B|)!``
for ``j`` in ``B``. Cost: the nodes visited, at most the tree's size, per row,
tree and reference. Over references the values are averaged (the interventional
expectation over a background set).
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial
from typing import Any

import numpy as np

__all__ = ["forest_shap"]


@lru_cache(maxsize=4096)
def _weights(a: int, b: int) -> tuple[float, float]:
    """Shapley weight of a feature in ``A`` and of one in ``B`` (|A| = a, |B| = b)."""
    m = factorial(a + b)
    pos = factorial(a - 1) * factorial(b) / m if a else 0.0
    neg = factorial(a) * factorial(b - 1) / m if b else 0.0
    return pos, neg


def _as_model_input(x: np.ndarray) -> np.ndarray:
    # ForestEstimator.predict_proba compares float32 inputs against float64 thresholds
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def forest_shap(forest: Any, x: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interventional Shapley values of a :class:`~iomt_ids.models.trees.ForestEstimator`.

    Parameters
    ----------
    forest : ForestEstimator
        Flat node arrays (``left``, ``right``, ``feature``, ``threshold``, ``value``, ``roots``).
    x : numpy.ndarray
        ``(n, F)`` preprocessed rows to explain.
    references : numpy.ndarray
        ``(F,)`` or ``(R, F)`` preprocessed reference rows (e.g. benign traffic).

    Returns
    -------
    phi : numpy.ndarray
        ``(n, F, C)`` contribution of each feature to each class probability.
    base : numpy.ndarray
        ``(C,)`` the forest's mean output on the references; for every row
        ``base + phi[i].sum(axis=0) == forest.predict_proba(x[i])`` (up to rounding).
    """
    x = _as_model_input(np.atleast_2d(x))
    refs = _as_model_input(np.atleast_2d(references))
    n, n_feat = x.shape
    value = np.asarray(forest.value, dtype=np.float64)
    n_classes = value.shape[1]
    left = forest.left.tolist()
    right = forest.right.tolist()
    feature = forest.feature.tolist()
    threshold = forest.threshold.tolist()
    roots = forest.roots.tolist()
    safe_feat = np.maximum(np.asarray(forest.feature), 0)
    phi = np.zeros((n, n_feat, n_classes))
    base = np.zeros(n_classes)
    for r in refs:
        r_child = np.where(r[safe_feat] <= forest.threshold, forest.left, forest.right).tolist()
        base_leaves = []
        for root in roots:
            node = root
            while left[node] >= 0:
                node = r_child[node]
            base_leaves.append(node)
        base += value[base_leaves].sum(axis=0)
        for i in range(n):
            xi = x[i].tolist()
            feats: list[int] = []
            leaves: list[int] = []
            wts: list[float] = []
            for root in roots:
                stack = [(root, 0, 0, (), ())]
                while stack:
                    node, in_mask, out_mask, a_set, b_set = stack.pop()
                    if left[node] < 0:
                        a, b = len(a_set), len(b_set)
                        if a or b:
                            pos, neg = _weights(a, b)
                            for j in a_set:
                                feats.append(j)
                                leaves.append(node)
                                wts.append(pos)
                            for j in b_set:
                                feats.append(j)
                                leaves.append(node)
                                wts.append(-neg)
                        continue
                    f = feature[node]
                    bit = 1 << f
                    x_child = left[node] if xi[f] <= threshold[node] else right[node]
                    if in_mask & bit:
                        stack.append((x_child, in_mask, out_mask, a_set, b_set))
                    elif out_mask & bit:
                        stack.append((r_child[node], in_mask, out_mask, a_set, b_set))
                    elif x_child == r_child[node]:
                        stack.append((x_child, in_mask, out_mask, a_set, b_set))
                    else:
                        stack.append((x_child, in_mask | bit, out_mask, (*a_set, f), b_set))
                        stack.append((r_child[node], in_mask, out_mask | bit, a_set, (*b_set, f)))
            if feats:
                np.add.at(phi[i], np.asarray(feats), np.asarray(wts)[:, None] * value[np.asarray(leaves)])
    scale = 1.0 / (max(len(roots), 1) * len(refs))
    return phi * scale, base * scale
