"""Search for a deep model that matches LightGBM on its own (validation only), then test the winner.

Stages (``--stage``), each resumable: every finished unit of work is one line appended to
``--results`` (JSONL); a killed run skips what that file already holds and continues. Member
probabilities are cached under ``--cache`` (ignored by git) so that seed ensembles can be
scored without retraining.

* ``search``: the candidates of :data:`SEARCH` on the **validation** split only (the seeded,
  stratified 20 % of the de-duplicated shipped train folder that the pipeline holds out;
  split seed 0 unless a candidate says otherwise). Test rows are never read in this stage.
  A candidate with ``members = k`` trains k models that share the split and differ in
  their weight/shuffling seed, records each one and the soft vote (mean of the
  probabilities) of the first 1..k of them.
* ``final``: the chosen recipe (:data:`FINAL`), the ``tuned`` reference and LightGBM on
  **test**, seeds 0, 1, 2 (seed = protocol cut, validation split and weights of member 0),
  under ``--protocols`` (shipped and capture).
* ``lab`` / ``lab-test``: real sequences on the lab data (``src/iomt_ids/datasets/lab``,
  windows in capture order): the recurrent model reads the k consecutive windows of one
  capture that end at the window it classifies (the DNN and LightGBM get the same k windows
  side by side). k is chosen on a time-ordered validation (the last 20 % of every run-1
  capture; ``lab``), then tested on run 2 with 3 seeds (``lab-test``).
* ``report``: tables (``tables.md``, also printed) and the per-class F1 figure; fills in the
  soft-vote records of ensembles whose members two workers finished out of order.

Usage (``--only`` restricts a stage to some candidates; ``--shard i/n`` splits it between workers)::

    python benchmarks/deep_search.py --data ../shared/data/ciciomt2024/v2/sample --stage search --threads 1
    python benchmarks/deep_search.py --stage final --shard 0/2 --threads 1   # and --shard 1/2 beside it
    python benchmarks/deep_search.py --stage lab && python benchmarks/deep_search.py --stage lab-test
    python benchmarks/deep_search.py --stage report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "results" / "deep-search"
CACHE = REPO / "runs" / "deep-search"
LAB = REPO / "src" / "iomt_ids" / "datasets" / "lab"

#: the ``tuned`` preset's optimiser fields (training/config.py) and DNN sizes (workflows/recipes.py)
TUNED_TRAIN: dict[str, Any] = {
    "lr": 3e-3, "batch_size": 1024, "max_epochs": 150, "patience": 20,
    "schedule": "cosine", "warmup_epochs": 2, "amp": True,
}  # fmt: skip
TUNED_SIZES: dict[str, dict[str, Any]] = {
    "dnn": {"dense_units": (256, 128), "dropout": 0.1},
    "gru_dnn": {"rnn_units": (128,), "dense_units": (256, 128), "dropout": 0.1},
    "lstm_dnn": {"rnn_units": (128,), "dense_units": (256, 128), "dropout": 0.1},
}
#: weight/shuffling seed of ensemble member m for split seed s (member 0 = the pipeline's own run)
MEMBER_SEED_STEP = 1000


@dataclass(frozen=True)
class Candidate:
    """One recipe: features, model, sizes and optimiser; ``members`` models of different seeds."""

    name: str
    idea: str
    note: str
    model: str = "dnn"
    features: str = "log_std"  # log_std | quantile | quantile_uniform | log_std+quantile | raw (trees)
    train: dict[str, Any] = field(default_factory=lambda: dict(TUNED_TRAIN))
    kwargs: dict[str, Any] | None = None  # None: the tuned sizes of ``model``
    members: int = 1
    seeds: tuple[int, ...] = (0,)

    def model_kwargs(self) -> dict[str, Any]:
        return dict(TUNED_SIZES.get(self.model, {}) if self.kwargs is None else self.kwargs)


def _t(**kw: Any) -> dict[str, Any]:
    return {**TUNED_TRAIN, **kw}


_Q = "quantile"
_W512 = {"dense_units": (512, 256), "dropout": 0.1}
_LSQ = "log_scaled_q10"

#: The validation search, in the order it was run. Later blocks were written after reading the
#: earlier blocks' validation results (README.md of the results folder tells the story).
SEARCH: tuple[Candidate, ...] = (
    # 1. preprocessing (and, through members, 2. seed ensembles of the same recipe)
    Candidate("tuned", "preprocessing", "tuned preset: sign·log1p + standard scaling", members=5),
    Candidate("quantile", "preprocessing", "QuantileTransformer(normal) on every column", features=_Q),
    Candidate("quantile_uniform", "preprocessing", "QuantileTransformer(uniform)", features="quantile_uniform"),
    Candidate("log_std+quantile", "preprocessing", "both views side by side (2×F inputs)", features="log_std+quantile"),
    # 1b. written after block 1 and the per-class look at it: the tuned transform leaves IAT (median
    #     non-zero 4e-5 s, max 42 s) squashed into one value after scaling, and IAT is LightGBM's
    #     first split for Recon OS vs port scan; log1p(|x|/s) with s from train resolves it
    Candidate("log_scaled", "preprocessing", "sign·log1p(|x|/s), s = min(1, 1st pct of non-zero |x|)", features="log_scaled"),
    Candidate("log_scaled_q10", "preprocessing", "the same, s from the 10th percentile", features="log_scaled_q10"),
    # the bar on the same validation rows
    Candidate("lightgbm", "reference", "LightGBM, the project's settings", model="lightgbm", features="raw", train={}),
    # 3. loss, from the tuned recipe (quantile lost in block 1); class_weight_cap 0.01 makes every
    #    class weight equal, i.e. an unweighted focal loss (the trainer weights focal by class otherwise)
    Candidate("focal2", "loss", "focal γ=2, unweighted", train=_t(loss="focal", class_weight_cap=0.01)),
    Candidate("focal1", "loss", "focal γ=1, unweighted", train=_t(loss="focal", focal_gamma=1.0, class_weight_cap=0.01)),
    Candidate("ls0.05", "loss", "label smoothing 0.05", train=_t(label_smoothing=0.05)),
    Candidate("ls0.1", "loss", "label smoothing 0.1", train=_t(label_smoothing=0.1)),
    # 4. the wider search of the tuned recipe (one change each)
    Candidate("w512", "architecture", "Dense 512-256", kwargs=_W512, members=3),  # members 1-2 added in block 6
    Candidate("w512x3", "architecture", "Dense 512-256-128", kwargs={"dense_units": (512, 256, 128), "dropout": 0.1}),
    Candidate("drop0", "architecture", "dropout 0", kwargs={"dense_units": (256, 128), "dropout": 0.0}),
    Candidate("drop0.2", "architecture", "dropout 0.2", kwargs={"dense_units": (256, 128), "dropout": 0.2}),
    Candidate("lr1e-3", "optimiser", "lr 1e-3", train=_t(lr=1e-3)),
    Candidate("lr1e-2", "optimiser", "lr 1e-2", train=_t(lr=1e-2)),
    Candidate("b256", "optimiser", "batch 256 (lr 1.5e-3)", train=_t(batch_size=256, lr=1.5e-3)),
    Candidate("wd1e-1", "optimiser", "AdamW weight decay 0.1", train=_t(weight_decay=0.1)),
    Candidate("e300", "optimiser", "up to 300 epochs, patience 30", train=_t(max_epochs=300, patience=30)),
    Candidate("full_last", "optimiser", "whole 150-epoch cosine, last weights (no early stop)",
              train=_t(patience=150, restore_best=False)),
    # 5. model family under the tuned recipe
    Candidate("gru_dnn", "model", "GRU 128 -> BN -> Dense 256-128 (T = 1)", model="gru_dnn"),
    Candidate("lstm_dnn", "model", "LSTM 128 -> BN -> Dense 256-128 (T = 1)", model="lstm_dnn"),
    # 6. combinations of the block winners (written after blocks 1-5), 3 members each to see past
    #    the seed noise (the tuned recipe's 5 members spread 0.8036-0.8072)
    Candidate("qs+w512", "combination", "log_scaled_q10 + Dense 512-256", features=_LSQ, kwargs=_W512, members=3),
    Candidate("qs+w512+ls", "combination", "log_scaled_q10 + Dense 512-256 + label smoothing 0.1",
              features=_LSQ, kwargs=_W512, train=_t(label_smoothing=0.1), members=3),
    Candidate("qs+lstm_w512", "combination", "log_scaled_q10 + LSTM 128 -> Dense 512-256", model="lstm_dnn",
              features=_LSQ, kwargs={"rnn_units": (128,), **_W512}, members=3),
    # 7. the leader without the IAT scale (which needs a Preprocessor change): does the scale matter?
    Candidate("w512+ls", "combination", "tuned transform + Dense 512-256 + label smoothing 0.1",
              kwargs=_W512, train=_t(label_smoothing=0.1), members=3),
)  # fmt: skip

#: What goes to test (stage ``final``): the chosen recipe with its members, and the references.
FINAL: tuple[Candidate, ...] = (
    Candidate(
        "tuned", "reference", "tuned preset, gru_dnn (best deep of docs/results/compare)", model="gru_dnn"
    ),
    Candidate(
        "deep",
        "chosen",
        "tuned transform + Dense 512-256 + label smoothing 0.1 (= w512+ls; the 'deep' preset)",
        kwargs=_W512,
        train=_t(label_smoothing=0.1),
        members=3,
    ),
    Candidate(
        "lightgbm",
        "reference",
        "LightGBM, the project's settings",
        model="lightgbm",
        features="raw",
        train={},
    ),
)


# -- small helpers ---------------------------------------------------------------------------
def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: ignore, it is redone
                continue
    return out


def _key(r: dict[str, Any]) -> tuple:
    return (r["stage"], r["candidate"], r.get("protocol", "shipped"), r["seed"], str(r["member"]))


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # one write per line: safe with two workers
        fh.write(json.dumps(record) + "\n")


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", labels=np.arange(n_classes), zero_division=0))


def per_class_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> list[float]:
    from sklearn.metrics import f1_score

    return [
        round(float(v), 4)
        for v in f1_score(y, pred, average=None, labels=np.arange(n_classes), zero_division=0)
    ]


# -- data ---------------------------------------------------------------------------------------
@dataclass
class Split:
    """De-duplicated rows of one protocol cut, the validation split of ``seed``, and feature caches."""

    raw_train: Any
    y: np.ndarray
    raw_test: Any
    y_test: np.ndarray
    columns: tuple[str, ...]
    classes: tuple[str, ...]
    release: str
    tr: np.ndarray
    va: np.ndarray
    description: str
    views: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=dict)


_SPLITS: dict[tuple[str, int, int], Split] = {}
_RAW: dict[str, Any] = {}


def get_split(data: Path, protocol: str, seed: int, task: int) -> Split:
    key = (protocol, seed, task)
    if key in _SPLITS:
        return _SPLITS[key]
    from iomt_ids.data.loader import load_dataset
    from iomt_ids.data.protocols import apply_protocol
    from iomt_ids.data.split import stratified_split
    from iomt_ids.workflows.train import prepare_splits

    if "splits" not in _RAW:
        _RAW["splits"] = load_dataset(data)
    cut = apply_protocol(_RAW["splits"], protocol, seed=seed)
    prep = prepare_splits(cut.splits, task)
    tr, va = stratified_split(prep.y_train, 0.2, seed)
    _SPLITS.clear()  # keep one cut in memory
    _SPLITS[key] = Split(
        prep.train.table, prep.y_train, prep.test.table, prep.y_test, prep.train.columns,
        prep.classes, prep.train.release, tr, va, cut.description,
    )  # fmt: skip
    return _SPLITS[key]


def features(
    split: Split, kind: str, with_test: bool, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(train, validation, test or None) rows of view ``kind``, every statistic fitted on train rows only."""
    cached = split.views.get(kind)
    if cached is not None and (cached[2] is not None or not with_test):
        return cached
    from iomt_ids.data.preprocess import Preprocessor
    from iomt_ids.workflows.recipes import preprocessor_for

    if kind == "log_std+quantile":
        a = features(split, "log_std", with_test, seed)
        b = features(split, "quantile", with_test, seed)
        out = tuple(None if a[i] is None else np.hstack([a[i], b[i]]) for i in range(3))
        split.views[kind] = out  # type: ignore[assignment]
        return out  # type: ignore[return-value]
    if kind == "log_std":
        pre = preprocessor_for("dnn", "tuned", split.columns)
    elif kind in ("raw", "quantile", "quantile_uniform") or kind.startswith("log_scaled"):
        # cleaning + zero-variance filter only (the trees' preprocessing)
        pre = preprocessor_for("lightgbm", "tuned", split.columns)
    else:
        raise ValueError(f"unknown feature view {kind!r}")
    assert isinstance(pre, Preprocessor)
    x_tr = pre.fit_transform(split.raw_train, source="train", rows=split.tr)
    x_va = pre.transform(split.raw_train, source="validation", rows=split.va)
    x_te = pre.transform(split.raw_test, source="test") if with_test else None
    if kind.startswith("quantile"):
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(
            n_quantiles=1000,
            output_distribution="normal" if kind == "quantile" else "uniform",
            subsample=1_000_000,
            random_state=seed,
        ).fit(x_tr)
        x_tr, x_va = qt.transform(x_tr).astype(np.float32), qt.transform(x_va).astype(np.float32)
        x_te = None if x_te is None else qt.transform(x_te).astype(np.float32)
    if kind.startswith("log_scaled"):
        x_tr, x_va, x_te = log_scaled(pre.kept_columns_, x_tr, x_va, x_te, kind)
    split.views[kind] = (x_tr, x_va, x_te)
    return split.views[kind]


def log_scales(columns: tuple[str, ...], x_tr: np.ndarray, q: float = 1.0) -> dict[str, float]:
    """Per heavy-tailed column: s = min(1, q-th percentile of its non-zero |x| on train rows).

    ``sign(x)·log1p(|x|/s)`` is then linear below s and logarithmic above it: with s = 1 it is the
    tuned preset's transform; columns of tiny values (IAT: median non-zero 4e-5 s) get s < 1, so
    that their differences survive the scaling instead of collapsing to one value.
    """
    from iomt_ids.workflows.recipes import HEAVY_TAILED

    out = {}
    for j, col in enumerate(columns):
        if col in HEAVY_TAILED:
            nz = np.abs(x_tr[:, j][x_tr[:, j] != 0])
            out[col] = float(min(1.0, np.percentile(nz, q))) if len(nz) else 1.0
    return out


def log_scaled(
    columns: tuple[str, ...], x_tr: np.ndarray, x_va: np.ndarray, x_te: np.ndarray | None, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """View ``log_scaled[_qN]``: sign·log1p(|x|/s) on heavy-tailed columns (s from train), then standard scaling."""
    from sklearn.preprocessing import StandardScaler

    q = float(kind.split("_q")[1]) if "_q" in kind else 1.0
    scales = log_scales(columns, x_tr, q)
    idx = [(columns.index(c), s) for c, s in scales.items()]

    def tf(x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        for j, s in idx:
            x[:, j] = np.sign(x[:, j]) * np.log1p(np.abs(x[:, j]) / s)
        return x

    sc = StandardScaler().fit(tf(x_tr))
    out = [None if x is None else sc.transform(tf(x)).astype(np.float32) for x in (x_tr, x_va, x_te)]
    return out[0], out[1], out[2]  # type: ignore[return-value]


# -- fitting -----------------------------------------------------------------------------------
def fit_deep(
    model: str, kwargs: dict[str, Any], train: dict[str, Any], seed: int, x_tr: np.ndarray, y_tr: np.ndarray,
    x_va: np.ndarray, y_va: np.ndarray, n_classes: int,
) -> tuple[Any, Any]:  # fmt: skip
    """The pipeline's deep fit (workflows.train._fit_deep) on given rows: (module, history)."""
    from iomt_ids.models import build_model
    from iomt_ids.training.config import TrainConfig
    from iomt_ids.training.trainer import Trainer, seed_everything

    cfg = TrainConfig(name="custom", seed=seed, **train)
    seed_everything(seed)
    module = build_model(model, x_tr.shape[-1], n_classes, **kwargs)
    module.n_classes = n_classes
    if getattr(module, "sequence_input", False) and x_tr.ndim == 2:
        x_tr, x_va = x_tr[:, None, :], x_va[:, None, :]
    history = Trainer(module, cfg, device="cpu", progress=False).fit(x_tr, y_tr, x_va, y_va)
    module.to("cpu").eval()
    return module, history


def deep_proba(module: Any, x: np.ndarray) -> np.ndarray:
    from iomt_ids.training.trainer import predict_proba

    if getattr(module, "sequence_input", False) and x.ndim == 2:
        x = x[:, None, :]
    return predict_proba(module, x)


def fit_lightgbm(
    seed: int, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, n: int
) -> Any:
    from iomt_ids.models.trees import fit_tree
    from iomt_ids.training.config import get_preset

    est, history = fit_tree(
        "lightgbm", x_tr, y_tr, x_va, y_va, n, get_preset("paper").with_overrides(seed=seed)
    )
    return est, history


# -- units of work ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    stage: str
    cand: Candidate
    protocol: str
    seed: int
    member: int

    def key(self) -> tuple:
        return (self.stage, self.cand.name, self.protocol, self.seed, str(self.member))


def _cache_file(cache: Path, u: Unit) -> Path:
    return cache / u.stage / u.cand.name / f"{u.protocol}-s{u.seed}-m{u.member}.npz"


def run_unit(u: Unit, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train one member (or LightGBM); record it, and the soft vote when it completes an ensemble."""
    t0 = time.perf_counter()
    load0 = _load()
    test = u.stage == "final"
    split = get_split(args.data, u.protocol, u.seed, args.task)
    n = len(split.classes)
    x_tr, x_va, x_te = features(split, u.cand.features, test, u.seed)
    y_tr, y_va = split.y[split.tr], split.y[split.va]
    wseed = u.seed + MEMBER_SEED_STEP * u.member
    if u.cand.model == "lightgbm":
        est, history = fit_lightgbm(wseed, x_tr, y_tr, x_va, y_va, n)
        p_va = est.predict_proba(x_va)
        p_te = est.predict_proba(x_te) if test else None
        epochs, best = history[0].get("trees"), None  # trees kept
    else:
        module, history = fit_deep(
            u.cand.model, u.cand.model_kwargs(), u.cand.train, wseed, x_tr, y_tr, x_va, y_va, n
        )
        p_va = deep_proba(module, x_va)
        p_te = deep_proba(module, x_te) if test else None
        epochs, best = len(history), history.best_epoch
    cf = _cache_file(args.cache, u)
    cf.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        cf, val=p_va.astype(np.float32), **({"test": p_te.astype(np.float32)} if test else {})
    )
    rec: dict[str, Any] = {
        "stage": u.stage, "idea": u.cand.idea, "candidate": u.cand.name, "note": u.cand.note,
        "model": u.cand.model, "features": u.cand.features, "protocol": u.protocol, "seed": u.seed,
        "member": u.member, "weight_seed": wseed,
        "train": u.cand.train, "model_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in u.cand.model_kwargs().items()},
        "rows_train": len(split.tr), "rows_val": len(split.va),
        "val_macro_f1": round(macro_f1(y_va, p_va.argmax(1), n), 4),
        "epochs": epochs, "best_epoch": best,
        "seconds": round(time.perf_counter() - t0, 1), "load_start": load0, "load_end": _load(),
    }  # fmt: skip
    if test:
        rec["rows_test"] = len(split.y_test)
        rec["test_macro_f1"] = round(macro_f1(split.y_test, p_te.argmax(1), n), 4)  # type: ignore[union-attr]
        rec["test_per_class_f1"] = per_class_f1(split.y_test, p_te.argmax(1), n)  # type: ignore[union-attr]
        rec["protocol_description"] = split.description
    return [rec, *ensemble_records(u, args, split)]


def ensemble_records(u: Unit, args: argparse.Namespace, split: Split) -> list[dict[str, Any]]:
    """Soft vote of members 0..m once member m >= 1 is done (needs members 0..m-1 cached)."""
    n = len(split.classes)
    probs = []
    for m in range(u.member + 1):
        f = _cache_file(args.cache, Unit(u.stage, u.cand, u.protocol, u.seed, m))
        if not f.is_file():
            return []
        probs.append(np.load(f))
    out = []
    for k in range(2, u.member + 2)[-1:]:
        p_va = np.mean([p["val"] for p in probs[:k]], axis=0)
        rec = {
            "stage": u.stage, "idea": "seed ensemble", "candidate": u.cand.name, "note": u.cand.note,
            "model": u.cand.model, "features": u.cand.features, "protocol": u.protocol, "seed": u.seed,
            "member": f"ens{k}", "val_macro_f1": round(macro_f1(split.y[split.va], p_va.argmax(1), n), 4),
        }  # fmt: skip
        if u.stage == "final":
            p_te = np.mean([p["test"] for p in probs[:k]], axis=0)
            rec["test_macro_f1"] = round(macro_f1(split.y_test, p_te.argmax(1), n), 4)
            rec["test_per_class_f1"] = per_class_f1(split.y_test, p_te.argmax(1), n)
        out.append(rec)
    return out


def missing_ensembles(results: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Soft-vote records of ensembles whose members finished out of order (two workers), from the cache."""
    have = {_key(r) for r in results}
    out = []
    for stage, cands in (("search", SEARCH), ("final", FINAL)):
        for c in cands:
            if c.members < 2:
                continue
            cuts = {
                (r["protocol"], r["seed"])
                for r in results
                if r["stage"] == stage and r["candidate"] == c.name
            }
            for protocol, seed in sorted(cuts):
                last = Unit(stage, c, protocol, seed, c.members - 1)
                members = [(stage, c.name, protocol, seed, str(m)) for m in range(c.members)]
                if (
                    all(k in have for k in members)
                    and (stage, c.name, protocol, seed, f"ens{c.members}") not in have
                ):
                    split = get_split(args.data, protocol, seed, args.task)
                    out += [{**r, "filled_from_cache": True} for r in ensemble_records(last, args, split)]
    return out


def units_for(stage: str, protocols: Iterable[str], seeds: Iterable[int]) -> list[Unit]:
    out: list[Unit] = []
    if stage == "search":
        for c in SEARCH:
            for s in c.seeds:
                out += [Unit("search", c, "shipped", s, m) for m in range(c.members)]
        return sorted(
            out, key=lambda u: u.member
        )  # breadth first: every candidate's first model, then more members
    # final: group by (protocol, seed) so each cut is prepared once per worker
    for p in protocols:
        for s in seeds:
            for c in FINAL:
                out += [Unit("final", c, p, s, m) for m in range(c.members)]
    # breadth first: member m of every cut before member m + 1 (a stopped run leaves whole ensembles)
    return sorted(out, key=lambda u: u.member)


# -- lab: real sequences ------------------------------------------------------------------------
LAB_KS: tuple[int, ...] = (1, 2, 4, 8)


def _lab_data() -> dict[str, Any]:
    """run1 (train) and run2 (test) rows in capture order, cleaned (no de-duplication: it would break order)."""
    if "lab" in _RAW:
        return _RAW["lab"]
    from iomt_ids.data.loader import load_split
    from iomt_ids.workflows.train import encode_labels

    out = {}
    for run in ("run1", "run2"):
        d = load_split(LAB / run)
        y, classes = encode_labels(d.labels, 19)
        # each file is one capture; rows keep the file's (capture) order
        out[run] = {"table": d.table, "y": y, "captures": d.captures.astype(str), "columns": d.columns}
        out["classes"] = classes
    # time-ordered validation: the last 20 % of every run-1 capture
    caps = out["run1"]["captures"]
    is_val = np.zeros(len(caps), dtype=bool)
    for c in np.unique(caps):
        idx = np.flatnonzero(caps == c)
        is_val[idx[int(round(0.8 * len(idx))) :]] = True
    out["run1"]["tr"], out["run1"]["va"] = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    _RAW["lab"] = out
    return out


def sequences(x: np.ndarray, captures: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k, F): for each row the k windows of its capture ending at it (first window repeated at a capture's start).

    ``rows`` must be in capture order; windows outside ``rows`` (e.g. validation rows) are never used.
    """
    out = np.empty((len(rows), k, x.shape[1]), dtype=np.float32)
    caps = captures[rows]
    pos = np.arange(len(rows))
    # first position of each row's capture run within ``rows``
    start = np.zeros(len(rows), dtype=np.int64)
    change = np.flatnonzero(caps[1:] != caps[:-1]) + 1
    bounds = np.concatenate([[0], change])
    start[bounds] = bounds
    start = np.maximum.accumulate(start)
    for j in range(k):
        src = np.maximum(pos - (k - 1 - j), start)
        out[:, j] = x[rows[src]]
    return out


def run_lab_unit(
    name: str, k: int, seed: int, evaluate_test: bool, args: argparse.Namespace
) -> dict[str, Any]:
    from iomt_ids.workflows.recipes import preprocessor_for

    t0, load0 = time.perf_counter(), _load()
    lab = _lab_data()
    r1, r2 = lab["run1"], lab["run2"]
    n = len(lab["classes"])
    tr, va = r1["tr"], r1["va"]
    model = name.split("@")[0]
    deep = model != "lightgbm"
    pre = preprocessor_for("gru_dnn" if deep else "lightgbm", "tuned", r1["columns"])
    pre.fit(r1["table"], source="lab run1 train", rows=tr)
    x1 = pre.transform(r1["table"], source="lab run1")
    x2 = pre.transform(r2["table"], source="lab run2") if evaluate_test else None
    all2 = np.arange(len(r2["y"]))
    s_tr, s_va = sequences(x1, r1["captures"], tr, k), sequences(x1, r1["captures"], va, k)
    s_te = sequences(x2, r2["captures"], all2, k) if x2 is not None else None
    y_tr, y_va = r1["y"][tr], r1["y"][va]
    if model in ("lightgbm", "dnn"):  # flat: the k windows side by side
        flat = (s_tr.reshape(len(s_tr), -1), s_va.reshape(len(s_va), -1))
        s_te = None if s_te is None else s_te.reshape(len(s_te), -1)
        s_tr, s_va = flat
    if model == "lightgbm":
        est, _ = fit_lightgbm(seed, s_tr, y_tr, s_va, y_va, n)
        p_va, p_te = est.predict_proba(s_va), (est.predict_proba(s_te) if s_te is not None else None)
        epochs = best = None
    else:
        module, history = fit_deep(
            model, dict(TUNED_SIZES[model]), dict(TUNED_TRAIN), seed, s_tr, y_tr, s_va, y_va, n
        )
        p_va = predict(module, s_va)
        p_te = predict(module, s_te) if s_te is not None else None
        epochs, best = len(history), history.best_epoch
    rec = {
        "stage": "lab-test" if evaluate_test else "lab-val", "candidate": name, "k": k, "model": model,
        "protocol": "lab run1 -> run2", "seed": seed, "member": 0,
        "val_macro_f1": round(macro_f1(y_va, p_va.argmax(1), n), 4), "epochs": epochs, "best_epoch": best,
        "rows_train": len(tr), "rows_val": len(va), "seconds": round(time.perf_counter() - t0, 1),
        "load_start": load0, "load_end": _load(),
    }  # fmt: skip
    if p_te is not None:
        rec["rows_test"] = len(all2)
        rec["test_macro_f1"] = round(macro_f1(r2["y"], p_te.argmax(1), n), 4)
        rec["test_per_class_f1"] = per_class_f1(r2["y"], p_te.argmax(1), n)
    return rec


def predict(module: Any, x: np.ndarray) -> np.ndarray:
    from iomt_ids.training.trainer import predict_proba

    return predict_proba(module, x)


LAB_VAL: tuple[tuple[str, int], ...] = (
    *((f"gru_dnn@{k}", k) for k in LAB_KS),
    ("dnn@8", 8),  # the same context without recurrence: the windows side by side
    ("lightgbm@1", 1),
    ("lightgbm@8", 8),
    # added after the first results: gru_dnn peaks at k = 4 on validation (k = 8 overfits by epoch 3)
    ("dnn@4", 4),
    ("lightgbm@4", 4),
)
#: chosen on lab validation (README.md): tested on run 2 with 3 seeds
LAB_TEST: tuple[tuple[str, int], ...] = (
    ("gru_dnn@1", 1),
    ("gru_dnn@4", 4),
    ("lightgbm@1", 1),
    ("lightgbm@4", 4),
)


# -- report ----------------------------------------------------------------------------------------
def _ms(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _signed(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.4f}"
    return f"{np.mean(values):+.4f} ± {np.std(values, ddof=1):.4f}"


def report(results: list[dict[str, Any]], out: Path) -> str:
    from collections import defaultdict

    lines: list[str] = ["# Deep search: tables (generated by benchmarks/deep_search.py --stage report)", ""]
    search = [r for r in results if r["stage"] == "search"]
    if search:
        lines += ["## Validation search (shipped split, split seed 0, 19 classes)", ""]
        by_idea: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in search:
            by_idea[r["idea"] if not str(r["member"]).startswith("ens") else "seed ensemble"].append(r)
        order = ["reference", "preprocessing", "loss", "architecture", "optimiser", "model", "combination"]
        ideas = sorted(by_idea, key=lambda k: order.index(k) if k in order else len(order))
        for idea in ideas:
            rows = by_idea[idea]
            lines += [f"### {idea}", "", "| candidate | what | model | features | members | val macro-F1 | epochs (best) | s |",
                      "|---|---|---|---|---|---|---|---|"]  # fmt: skip
            groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                groups[(r["candidate"], str(r["member"]) if idea == "seed ensemble" else "single")].append(r)
            for (cand, mem), g in groups.items():
                vals = [r["val_macro_f1"] for r in g]
                ep = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in g if r.get("epochs") is not None)
                sec = (
                    round(float(np.mean([r["seconds"] for r in g if "seconds" in r])), 0)
                    if any("seconds" in r for r in g)
                    else "–"
                )
                members = mem.replace("ens", "soft vote of ") if mem != "single" else f"{len(g)} single"
                lines.append(
                    f"| {cand} | {g[0]['note']} | {g[0]['model']} | {g[0]['features']} | {members} | {_ms(vals)} | {ep or '–'} | {sec} |"
                )
            lines.append("")
    final = [r for r in results if r["stage"] == "final"]
    if final:
        lines += ["## Test (19 classes, seeds 0, 1, 2)", ""]
        for proto in sorted({r["protocol"] for r in final}, key=lambda p: p != "shipped"):
            lines += [
                f"### protocol `{proto}`",
                "",
                "| model | members | seeds | val macro-F1 | **test macro-F1** | test Δ vs LightGBM, same seed |",
                "|---|---|---|---|---|---|",
            ]
            groups = defaultdict(list)
            for r in final:
                if r["protocol"] == proto:
                    groups[(r["candidate"], str(r["member"]))].append(r)
            gbm = {r["seed"]: r["test_macro_f1"] for r in groups.get(("lightgbm", "0"), [])}
            for (cand, mem), g in sorted(groups.items()):
                if mem not in ("0",) and not mem.startswith("ens"):
                    continue
                label = f"{cand} ({g[0]['model']}, {g[0]['features']})"
                members = "1" if mem == "0" else mem[3:]
                delta = [r["test_macro_f1"] - gbm[r["seed"]] for r in g if r["seed"] in gbm]
                d = "–" if cand == "lightgbm" or not delta else _signed(delta)
                lines.append(
                    f"| {label} | {members} | {', '.join(str(r['seed']) for r in sorted(g, key=lambda r: r['seed']))} "
                    f"| {_ms([r['val_macro_f1'] for r in g])} | {_ms([r['test_macro_f1'] for r in g])} | {d} |"
                )
            lines.append("")
    lab = [r for r in results if r["stage"].startswith("lab")]
    if lab:
        lines += ["## Lab sequences (train lab run 1, validation = last 20 % of each run-1 capture, test lab run 2)", "",
                  "| stage | model @ k windows | seeds | val macro-F1 | test macro-F1 |", "|---|---|---|---|---|"]  # fmt: skip
        groups = defaultdict(list)
        for r in lab:
            groups[(r["stage"], r["candidate"])].append(r)
        for (st, cand), g in sorted(groups.items(), key=lambda kv: (kv[0][0] != "lab-val", kv[0][1])):
            t = [r["test_macro_f1"] for r in g if "test_macro_f1" in r]
            lines.append(f"| {st} | {cand} | {len(g)} | {_ms([r['val_macro_f1'] for r in g])} | {_ms(t)} |")
        lines.append("")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text(text + "\n", encoding="utf-8")
    _figure(final, out)
    return text


def _figure(final: list[dict[str, Any]], out: Path) -> None:
    """Per-class test F1 (mean over seeds), chosen deep recipe vs LightGBM, shipped split."""
    from iomt_ids.data.labels import classes_for_task

    chosen = [c for c in FINAL if c.idea == "chosen"]
    if not final or not chosen:
        return
    c = chosen[0]
    mem = "0"  # the preset as a product: one model (member 0: weight seed = split seed)
    deep = [
        r
        for r in final
        if r["protocol"] == "shipped" and r["candidate"] == c.name and str(r["member"]) == mem
    ]
    gbm = [r for r in final if r["protocol"] == "shipped" and r["candidate"] == "lightgbm"]
    ref = [
        r
        for r in final
        if r["protocol"] == "shipped" and r["candidate"] == "tuned" and str(r["member"]) == "0"
    ]
    if not deep or not gbm:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = classes_for_task(19)
    series = [(f"'{c.name}' preset, dnn (1 model)", deep, "tab:blue"),
              ("tuned gru_dnn (1 model)", ref, "tab:gray"), ("LightGBM", gbm, "tab:orange")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.27
    x = np.arange(len(classes))
    for i, (label, rows, color) in enumerate(series):
        if not rows:
            continue
        v = np.mean([r["test_per_class_f1"] for r in rows], axis=0)
        m = np.mean([r["test_macro_f1"] for r in rows])
        ax.bar(
            x + (i - 1) * width, v, width, label=f"{label}: macro-F1 {m:.3f} ({len(rows)} seeds)", color=color
        )
    ax.set_xticks(
        x,
        [s.replace("TCP/IP ", "").replace("Recon ", "Recon\n") for s in classes],
        rotation=60,
        ha="right",
        fontsize=8,
    )
    ax.set_ylim(0.3, 1.06)
    ax.set_ylabel("test F1 (mean over seeds)")
    ax.set_title("19 classes, shipped split, v2 sample: per-class F1")
    ax.legend(loc="upper center", ncol=3, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "per_class_f1_19c.png", dpi=120)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ciciomt2024/v2/sample"))
    ap.add_argument("--stage", choices=("search", "final", "lab", "lab-test", "report"), default="search")
    ap.add_argument("--task", type=int, default=19)
    ap.add_argument("--protocols", default="shipped,capture")
    ap.add_argument("--seeds", default="0,1,2", help="final and lab-test stages")
    ap.add_argument("--only", default="", help="comma-separated candidate names (default: all of the stage)")
    ap.add_argument("--shard", default="0/1", help="i/n: this worker takes every n-th unit starting at i")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", type=Path, default=OUT / "results.jsonl")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    os.environ["IOMT_IDS_THREADS"] = str(args.threads)
    from iomt_ids.runtime import apply_thread_policy

    apply_thread_policy(args.threads)
    results = read_results(args.results)
    if args.stage == "report":
        for rec in missing_ensembles(results, args):
            append(args.results, rec)
        print(report(read_results(args.results), args.out))
        return
    done = {_key(r) for r in results}
    only = set(filter(None, args.only.split(",")))
    i, n = (int(v) for v in args.shard.split("/"))
    seeds = [int(s) for s in args.seeds.split(",")]
    meta = {"commit": _git_commit(), "host": platform.node(), "cores": os.cpu_count(), "threads": args.threads,
            "python": sys.version.split()[0], "argv": sys.argv[1:]}  # fmt: skip
    from tqdm.auto import tqdm

    if args.stage in ("lab", "lab-test"):
        test = args.stage == "lab-test"
        todo = [(name, k, s) for name, k in (LAB_TEST if test else LAB_VAL) for s in (seeds if test else [0])]
        todo = [t for t in todo if (not only or t[0] in only)]
        todo = [t for j, t in enumerate(todo) if j % n == i]
        todo = [t for t in todo if (args.stage, t[0], "lab run1 -> run2", t[2], "0") not in done]
        for name, k, s in tqdm(todo, desc=args.stage, unit="run"):
            rec = {**run_lab_unit(name, k, s, test, args), **meta}
            append(args.results, rec)
            tqdm.write(f"{rec['stage']} {name} seed {s}: val {rec['val_macro_f1']:.4f}"
                       + (f" test {rec['test_macro_f1']:.4f}" if "test_macro_f1" in rec else "") + f" ({rec['seconds']} s)")  # fmt: skip
        print(report(read_results(args.results), args.out))
        return
    units = units_for(args.stage, args.protocols.split(","), seeds)
    units = [u for u in units if not only or u.cand.name in only]
    units = [u for j, u in enumerate(units) if j % n == i and u.key() not in done]
    for u in tqdm(units, desc=args.stage, unit="run"):
        for rec in run_unit(u, args):
            rec.update(meta)
            append(args.results, rec)
            msg = f"{rec['stage']} {rec['candidate']} {rec['protocol']} seed {rec['seed']} member {rec['member']}: val {rec['val_macro_f1']:.4f}"
            if "test_macro_f1" in rec:
                msg += f" test {rec['test_macro_f1']:.4f}"
            tqdm.write(msg + (f" ({rec['seconds']} s, {rec['epochs']} epochs)" if "seconds" in rec else ""))
    print(report(read_results(args.results), args.out))


if __name__ == "__main__":
    main()
