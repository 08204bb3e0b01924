"""Which ensemble rule? Decided on the validation split only; the test scores are reported, never used.

For each (task, seed): the same split, cleaning and member fits as ``iomt-ids train --model
ensemble --preset tuned`` (LightGBM and a random forest on the cleaned rows; dnn and gru_dnn
under ``tuned`` with their own log1p + scaling), keeping every member's validation and test
probabilities (``probs/<task>c-seed<seed>.npz``). Then, from those files alone, each rule of
:data:`RULES` (soft votes of two or three members, the choice between two deep candidates,
a weighted geometric mean, per-class offsets for macro-F1, stacking with a logistic
regression) is scored

* on validation only, by 2-fold cross-validation inside the validation rows (fitted on one
  half, scored on the other, both ways, averaged): the basis of every choice;
* on test, fitted on all validation rows: reported, never used to choose.

Usage::

    python benchmarks/ensemble_study.py fit --data ../shared/data/ciciomt2024/v2/sample \
        --out runs/ensemble-study --tasks 19,6,2 --seeds 0
    python benchmarks/ensemble_study.py report --out runs/ensemble-study
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEEP = ("dnn", "gru_dnn")
TREES = ("lightgbm", "random_forest")


def fit(data: Path, out: Path, tasks: list[int], seeds: list[int]) -> None:
    from iomt_ids.data.loader import load_dataset
    from iomt_ids.data.protocols import apply_protocol
    from iomt_ids.data.split import stratified_split
    from iomt_ids.models import trees
    from iomt_ids.training.config import get_preset
    from iomt_ids.workflows.recipes import model_kwargs_for, preprocessor_for
    from iomt_ids.workflows.train import _fit_deep, _member_preprocessor, prepare_splits

    splits = load_dataset(data, progress=False)
    (out / "probs").mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for task in tasks:
            path = out / "probs" / f"{task}c-seed{seed}.npz"
            if path.exists():
                continue
            cut = apply_protocol(splits, "shipped", seed=seed)
            prep = prepare_splits(cut.splits, task)
            config = get_preset("tuned").with_overrides(seed=seed)
            columns = prep.train.columns
            y = prep.y_train
            tr, va = stratified_split(y, config.val_fraction, seed)
            pre = preprocessor_for("ensemble", "tuned", columns)
            raw = prep.train.to_numpy()
            x_tr, x_va = pre.fit_transform(raw, rows=tr), pre.transform(raw, rows=va)
            x_te = pre.transform(prep.test.to_numpy())
            n = len(prep.classes)
            arrays: dict[str, np.ndarray] = {"y_va": y[va], "y_te": prep.y_test}
            seconds = {}
            for name in TREES:
                t0 = time.perf_counter()
                est, _ = trees.fit_tree(name, x_tr, y[tr], x_va, y[va], n, config)
                seconds[name] = time.perf_counter() - t0
                arrays[f"{name}_va"], arrays[f"{name}_te"] = est.predict_proba(x_va), est.predict_proba(x_te)
            for name in DEEP:
                t0 = time.perf_counter()
                mp = _member_preprocessor(name, "tuned", columns, pre.kept_columns_)
                d_tr = mp.fit_transform(x_tr)
                kw = model_kwargs_for(name, "tuned")
                est, _ = _fit_deep(name, d_tr, y[tr], mp.transform(x_va), y[va], n, config, "cpu", False, kw)
                seconds[name] = time.perf_counter() - t0
                arrays[f"{name}_va"] = est.predict_proba(mp.transform(x_va))
                arrays[f"{name}_te"] = est.predict_proba(mp.transform(x_te))
            np.savez_compressed(path, **arrays)
            (path.with_suffix(".json")).write_text(json.dumps({"seconds": seconds}))
            sys.stdout.write(f"{task}c seed {seed}: {seconds}\n")
            sys.stdout.flush()


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-7, 1.0))


def _vote(members: tuple[str, ...]) -> tuple:
    """Soft vote of ``members``: the weight grid of iomt_ids.models.ensemble (a simplex grid for 3)."""
    from iomt_ids.models.ensemble import WEIGHT_GRID, blend, choose_weight, log_loss, macro_f1

    def fit(ps: list[np.ndarray], y: np.ndarray) -> tuple[float, ...]:
        if len(ps) == 2:
            w = choose_weight(ps[0], ps[1], y)["weight"]
            return (w, 1.0 - w)
        best, n = None, ps[0].shape[1]
        for a in WEIGHT_GRID:
            for b in WEIGHT_GRID:
                if a + b <= 1.0 + 1e-9:
                    w = (a, b, round(1.0 - a - b, 6))
                    p = blend(ps, w)
                    score = (macro_f1(y, p.argmax(1), n), -log_loss(y, p))
                    best = max(best or (score, w), (score, w))
        return best[1]

    return members, fit, lambda ps, w: blend(ps, w)


def _best_of() -> tuple:
    """The shipped rule with two deep candidates: the (candidate, weight) with the best macro-F1, then log-loss."""
    from iomt_ids.models.ensemble import blend, choose_weight

    members = ("dnn", "gru_dnn", "lightgbm")

    def fit(ps: list[np.ndarray], y: np.ndarray) -> tuple[int, float]:
        choices = [choose_weight(ps[i], ps[2], y) for i in (0, 1)]
        i = min((0, 1), key=lambda k: (-choices[k]["macro_f1"], choices[k]["log_loss"]))
        return i, choices[i]["weight"]

    return members, fit, lambda ps, m: blend([ps[m[0]], ps[2]], [m[1], 1 - m[1]])


def _geometric(members: tuple[str, ...]) -> tuple:
    """Weighted geometric mean (log-linear pooling) of two members, weight on the same grid."""
    from iomt_ids.models.ensemble import WEIGHT_GRID, log_loss, macro_f1

    def predict(ps: list[np.ndarray], w: float) -> np.ndarray:
        lp = w * _log(ps[0]) + (1 - w) * _log(ps[1])
        e = np.exp(lp - lp.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def fit(ps: list[np.ndarray], y: np.ndarray) -> float:
        n = ps[0].shape[1]
        return max(
            WEIGHT_GRID,
            key=lambda w: (macro_f1(y, predict(ps, w).argmax(1), n), -log_loss(y, predict(ps, w))),
        )

    return members, fit, predict


def _class_bias(members: tuple[str, ...]) -> tuple:
    """The two-member vote, then per-class log-offsets raised one class at a time for macro-F1."""
    from iomt_ids.models.ensemble import choose_weight, macro_f1

    steps = np.linspace(-1.5, 1.5, 13)

    def fit(ps: list[np.ndarray], y: np.ndarray) -> tuple[float, np.ndarray]:
        from iomt_ids.models.ensemble import blend

        w = choose_weight(ps[0], ps[1], y)["weight"]
        lp, n = _log(blend(ps, [w, 1 - w])), ps[0].shape[1]
        bias, cur = np.zeros(n), macro_f1(y, lp.argmax(1), n)
        for _ in range(2):
            for c in range(n):
                for step in steps:
                    b = bias.copy()
                    b[c] = step
                    f = macro_f1(y, (lp + b).argmax(1), n)
                    if f > cur + 1e-9:
                        cur, bias = f, b
        return w, bias

    def predict(ps: list[np.ndarray], m: tuple[float, np.ndarray]) -> np.ndarray:
        from iomt_ids.models.ensemble import blend

        return _log(blend(ps, [m[0], 1 - m[0]])) + m[1]

    return members, fit, predict


def _stack(members: tuple[str, ...]) -> tuple:
    """Stacking: multinomial logistic regression on the members' log-probabilities."""
    from sklearn.linear_model import LogisticRegression

    def fit(ps: list[np.ndarray], y: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=1.0, max_iter=500).fit(np.hstack([_log(p) for p in ps]), y)

    def predict(ps: list[np.ndarray], lr: LogisticRegression) -> np.ndarray:
        full = np.zeros((len(ps[0]), ps[0].shape[1]))
        full[:, lr.classes_] = lr.predict_proba(np.hstack([_log(p) for p in ps]))
        return full

    return members, fit, predict


RULES = {
    "vote dnn": _vote(("dnn", "lightgbm")),
    "vote gru_dnn": _vote(("gru_dnn", "lightgbm")),
    "vote best of dnn, gru_dnn (both fitted)": _best_of(),
    "vote dnn+gru_dnn+lgbm": _vote(("dnn", "gru_dnn", "lightgbm")),
    "vote rf+lgbm": _vote(("random_forest", "lightgbm")),
    "vote gru_dnn+rf+lgbm": _vote(("gru_dnn", "random_forest", "lightgbm")),
    "geometric gru_dnn": _geometric(("gru_dnn", "lightgbm")),
    "vote gru_dnn + class bias": _class_bias(("gru_dnn", "lightgbm")),
    "stack dnn": _stack(("dnn", "lightgbm")),
    "stack gru_dnn": _stack(("gru_dnn", "lightgbm")),
}


def report(out: Path) -> None:
    """Per (task, seed): each rule's 2-fold validation macro-F1 and its test macro-F1 when fitted on all validation rows."""
    from iomt_ids.models.ensemble import macro_f1

    rows = []
    for path in sorted((out / "probs").glob("*c-seed*.npz")):
        task, seed = path.stem.split("c-seed")
        d = dict(np.load(path))
        y_va, y_te, n = d["y_va"], d["y_te"], d["lightgbm_va"].shape[1]
        perm = np.random.default_rng(0).permutation(len(y_va))
        halves = (perm[: len(perm) // 2], perm[len(perm) // 2 :])
        cv: dict[str, float] = {}
        test: dict[str, float] = {}
        for name, (members, fit, predict) in RULES.items():
            if any(f"{m}_va" not in d for m in members):
                continue
            scores = []
            for a, b in (halves, halves[::-1]):
                m = fit([d[f"{k}_va"][a] for k in members], y_va[a])
                scores.append(macro_f1(y_va[b], predict([d[f"{k}_va"][b] for k in members], m).argmax(1), n))
            cv[name] = float(np.mean(scores))
            m = fit([d[f"{k}_va"] for k in members], y_va)
            test[name] = macro_f1(y_te, predict([d[f"{k}_te"] for k in members], m).argmax(1), n)
        for name in ("lightgbm", *DEEP, "random_forest"):  # single members, for reference (nothing chosen)
            if f"{name}_va" in d:
                cv[name] = float(
                    np.mean([macro_f1(y_va[h], d[f"{name}_va"][h].argmax(1), n) for h in halves])
                )
                test[name] = macro_f1(y_te, d[f"{name}_te"].argmax(1), n)
        rows.append({"task": int(task), "seed": int(seed), "cv_val": cv, "test": test})
    (out / "study.json").write_text(json.dumps(rows, indent=2))
    for r in sorted(rows, key=lambda r: (r["task"], r["seed"])):
        sys.stdout.write(
            f"\n{r['task']} classes, seed {r['seed']}: rule | 2-fold validation macro-F1 | test\n"
        )
        for k in r["cv_val"]:
            sys.stdout.write(f"| {k} | {r['cv_val'][k]:.4f} | {r['test'][k]:.4f} |\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["fit", "report"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ciciomt2024/v2/sample"))
    ap.add_argument("--out", type=Path, default=Path("runs/ensemble-study"))
    ap.add_argument("--tasks", default="2,6,19")
    ap.add_argument("--seeds", default="0")
    a = ap.parse_args()
    if a.what == "fit":
        from iomt_ids.runtime import apply_thread_policy

        apply_thread_policy()
        fit(a.data, a.out, [int(t) for t in a.tasks.split(",")], [int(s) for s in a.seeds.split(",")])
    report(a.out)


if __name__ == "__main__":
    main()
