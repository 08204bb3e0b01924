"""Tree baselines: LightGBM and a random forest, in the same pipeline as the deep models.

Both fit on the preprocessed rows (cleaned, same feature set, no scaling needed) and
persist **without pickle**:

* ``lightgbm``: the booster's own text format (``lightgbm.txt``, written by
  ``Booster.model_to_string`` and read back by ``Booster(model_str=...)``).
* ``random_forest``: scikit-learn's fitted trees dumped as plain arrays
  (``forest.npz``: children, split feature, threshold, leaf class distribution) and
  evaluated with NumPy. Loading uses ``np.load(allow_pickle=False)``, so a bundle
  cannot execute code. No extra package is needed (skops/ONNX were not required).

The loaders accept only a ``model_file`` inside the bundle folder
(:func:`~iomt_ids.models.base.bundle_member`).

Both use the validation split: LightGBM for early stopping on the validation
log-loss, the forest only to report validation loss/accuracy in the history.

Scoring (``predict_proba``) goes through the compiled kernel of
:mod:`iomt_ids.models.compiled` when it is available (``backend="auto"``, the default;
``IOMT_IDS_TREE_BACKEND=native`` or :meth:`use_backend` choose), with the same classes
and probabilities as the native model; the kernel's node tables are built once, at
training or at the first load, and cached beside the weights (``compiled-trees.npz``,
trusted only where this machine built it; not part of the version id). When a bundle is
saved, its trees are also compiled to branch code (:mod:`iomt_ids.models.codegen`,
``compiled-trees-code.npz``, trusted the same way, for this CPU): batches of
:data:`~iomt_ids.models.codegen.MIN_ROWS` rows and more score through it, about 2x
faster; ``iomt-ids compile`` builds it for a bundle copied from another machine. When the
kernel is unavailable (llvmlite missing, an unsupported model), the native model scores
and one warning says why.

Fitting reports progress: a tqdm bar (iterations or trees, rate, ETA) on a terminal,
one log line every few iterations otherwise. The history has one record per boosting
iteration (LightGBM: train/validation log-loss and accuracy from LightGBM's own
evaluation) or per tree (forest: the metrics of the first k trees' vote), so that the
report draws a curve; ``record["trees"]`` is the number of boosting rounds (or trees)
the model has at that record, and ``history.best_epoch`` the record the kept model is.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.exceptions import BundleError, ConfigError
from iomt_ids.models import codegen
from iomt_ids.models.base import bundle_member, register_estimator
from iomt_ids.models.codegen import BranchCode
from iomt_ids.models.compiled import (
    CompileError,
    TreeTables,
    kernel_status,
    load_or_build,
    sha256_bytes,
    tables_from_forest,
    tables_from_lightgbm,
)
from iomt_ids.models.registry import TREE_MODELS
from iomt_ids.runtime import stderr_is_terminal
from iomt_ids.training.config import TrainConfig
from iomt_ids.training.history import History

__all__ = [
    "LIGHTGBM_PARAMS",
    "RANDOM_FOREST_PARAMS",
    "TREE_BACKENDS",
    "TREE_BACKEND_ENV",
    "TREE_MODELS",
    "ForestEstimator",
    "LightGBMEstimator",
    "class_model_text",
    "fit_tree",
    "tree_parts",
]

log = logging.getLogger(__name__)


#: LightGBM settings (400 trees at most, early stopping on validation log-loss after 50 rounds).
LIGHTGBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 5,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_boost_round": 400,
    "early_stopping_rounds": 50,
}

#: Random-forest settings (scikit-learn RandomForestClassifier arguments).
RANDOM_FOREST_PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "min_samples_leaf": 1,
    "max_features": "sqrt",
}


#: Scoring backends of a tree estimator: the compiled kernel when available (auto), the kernel, the library.
TREE_BACKENDS: tuple[str, ...] = ("auto", "compiled", "native")
#: Environment variable with the default backend of tree estimators ("auto" when unset).
TREE_BACKEND_ENV = "IOMT_IDS_TREE_BACKEND"
#: From this many rows a scoring call asks the thread policy for its thread count (else one thread).
_PARALLEL_ROWS = 8192
#: Reasons already warned about (the fallback to the native model warns once per reason and process).
_WARNED: set[str] = set()


def _threads() -> int:
    """Worker threads for tree fitting and scoring: the thread policy's choice (:mod:`iomt_ids.runtime`)."""
    from iomt_ids.runtime import current_threads

    return current_threads()


def _default_backend() -> str:
    value = os.environ.get(TREE_BACKEND_ENV, "").strip().lower() or "auto"
    if value not in TREE_BACKENDS:
        raise ConfigError(f"{TREE_BACKEND_ENV} must be one of {list(TREE_BACKENDS)}; got {value!r} instead.")
    return value


def _warn_once(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        log.warning("compiled tree scoring unavailable (%s); scoring with the native model.", reason)


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.log(p).mean()) if len(y) else float("nan")


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean()) if len(y) else float("nan")


# -- progress ---------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _Progress:
    """Progress of a tree fit: a tqdm bar (rate, ETA) on a terminal, else one log line every ``every`` steps.

    Redirected to a file or a pipe, a bar would write carriage-return frames; there the
    log lines are the progress report (as :class:`iomt_ids.training.Trainer` does per epoch).
    """

    def __init__(self, name: str, total: int, unit: str, enabled: bool) -> None:
        self.name, self.total, self.unit, self.enabled = name, max(1, int(total)), unit, enabled
        self.every = max(1, min(25, self.total // 10))
        self.t0 = time.perf_counter()
        self.bar: Any = None
        self._next_line = self.every
        if enabled and stderr_is_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=name, unit=unit, leave=False, mininterval=0.5)

    def update(self, done: int, **postfix: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.4f}" for k, v in postfix.items()}, refresh=False)
            return
        if done < self._next_line and done < self.total:
            return
        self._next_line = (done // self.every + 1) * self.every
        elapsed = time.perf_counter() - self.t0
        rate = done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        extra = "".join(f" {k} {v:.4f}" for k, v in postfix.items() if math.isfinite(v))
        log.info(
            "%s: %d/%d %s (%.1f %s/s, elapsed %s, ETA %s)%s",
            self.name, done, self.total, self.unit, rate, self.unit, _duration(elapsed), _duration(eta), extra,
        )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- compiled scoring, shared by both estimators ------------------------------------------


class _CompiledScoring:
    """The choice of scoring backend and the compiled tables (see :mod:`iomt_ids.models.compiled`)."""

    #: True when the native model reads float64 rows as they are (LightGBM): a float64 value that is
    #: not a float32 number then goes to the native model. The forest casts to float32 itself.
    _native_float64 = True

    def _init_scoring(self) -> None:
        self.backend = _default_backend()
        self._directory: Path | None = None
        self._model_file: str | None = None
        self._source_sha: str | None = None
        self._tables: TreeTables | None = None
        self._compile_error: str | None = None
        self._code: BranchCode | None = None
        self._lock = threading.Lock()

    def _bind(self, directory: Path, model_file: str, source_sha: str) -> None:
        """Remember the bundle folder and the SHA-256 of the weights (where the compiled cache lives)."""
        self._directory, self._model_file, self._source_sha = Path(directory), model_file, source_sha

    def use_backend(self, backend: str) -> Any:
        """Score with ``backend`` ("auto", "compiled" or "native") from now on; returns the estimator."""
        if backend not in TREE_BACKENDS:
            raise ConfigError(f"tree backend must be one of {list(TREE_BACKENDS)}; got {backend!r} instead.")
        self.backend = backend
        return self

    # implemented by each estimator
    def _build_tables(self) -> TreeTables:
        raise NotImplementedError

    def _native_proba(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compiled_tables(self) -> TreeTables:
        """The compiled tables, loaded from a trusted cache or built on first use.

        Raises CompileError (with the reason) when the compiled backend is unavailable here.
        """
        if self._tables is not None:
            return self._tables
        with self._lock:
            if self._tables is None and self._compile_error is None:
                try:
                    ok, why = kernel_status()
                    if not ok:
                        raise CompileError(why)
                    if self._directory is not None and self._source_sha is not None:
                        self._tables = load_or_build(
                            self._directory, self._source_sha, str(self._model_file), self._build_tables
                        )
                        if codegen.code_enabled():
                            self._code = codegen.load_trusted(
                                self._directory, self._source_sha, self._tables, str(self._model_file)
                            )
                    else:  # a model fitted in this process and not saved yet
                        self._tables = self._build_tables()
                except CompileError as exc:
                    self._compile_error = str(exc)
            if self._tables is None:
                raise CompileError(self._compile_error or "compiled tables unavailable")
            return self._tables

    def _exact_rows(self, x: Any) -> np.ndarray | None:
        """``x`` as float32 rows when the kernel scores them exactly as the native model; else None."""
        x = np.asarray(x)
        if x.ndim != 2 or x.dtype.kind != "f":
            return None
        x32 = x if x.dtype == np.float32 else x.astype(np.float32)
        if np.isnan(x32).any():  # the libraries send NaN their own ways; the native model decides
            return None
        if self._native_float64 and x.dtype != np.float32 and not np.array_equal(x32, x):
            return None
        return x32

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, float32, through the chosen backend."""
        if self.backend != "native":
            rows = self._exact_rows(x)
            if rows is not None:
                try:
                    tables = self.compiled_tables()
                except CompileError as exc:
                    if self.backend == "compiled":
                        raise
                    _warn_once(str(exc))
                else:
                    if rows.shape[1] >= tables.n_features:
                        threads = _threads() if len(rows) >= _PARALLEL_ROWS else 1
                        code = self._code
                        if code is not None and len(rows) >= codegen.MIN_ROWS:
                            return tables.probabilities(code.raw_scores(rows, threads))
                        return tables.predict_proba(rows, threads)
        return self._native_proba(x)

    @property
    def branch_code(self) -> BranchCode | None:
        """The loaded branch code (:mod:`iomt_ids.models.codegen`), None where only the tables score."""
        return self._code

    def compile_code(self, progress: bool = True) -> BranchCode:
        """Compile the bundle's branch code on this machine, cache it beside the weights and use it.

        Needs a saved or loaded bundle. Raises CompileError with the reason when it cannot.
        """
        tables = self.compiled_tables()
        if self._directory is None or self._source_sha is None:
            raise CompileError("branch code is compiled for a saved bundle; save the model first.")
        bar = _Progress("compiling trees", len(codegen._chunks(tables)), "chunk", progress)
        try:
            code = codegen.compile_and_cache(
                self._directory, self._source_sha, tables, str(self._model_file), jobs=_threads(),
                progress=lambda done, _total: bar.update(done),
            )  # fmt: skip
        finally:
            bar.close()
        self._code = code
        return code

    def _cache_compiled(self, directory: Path, model_file: str, source_sha: str) -> None:
        """After ``save``: bind to ``directory`` and cache the compiled tables there (best effort)."""
        self._bind(directory, model_file, source_sha)
        try:
            tables = load_or_build(directory, source_sha, model_file, self._build_tables, tables=self._tables)
        except (CompileError, OSError) as exc:
            log.debug("%s: compiled tables not cached: %s", directory, exc)
            return
        with self._lock:
            if self._tables is None and self._compile_error is None:
                self._tables = tables
        if codegen.code_enabled() and codegen.fits(tables) and kernel_status()[0]:  # llvmlite is here
            try:
                self.compile_code()
            except CompileError as exc:
                log.warning("%s: branch code not compiled (%s); scoring with the tables.", directory, exc)


def tree_parts(estimator: object) -> list[Any]:
    """The estimators with a compiled backend inside ``estimator``: itself, or an ensemble's tree members."""
    if isinstance(estimator, _CompiledScoring):
        return [estimator]
    members = getattr(estimator, "members", None) or []
    return [m.estimator for m in members if isinstance(m.estimator, _CompiledScoring)]


def _read_member(directory: Path, meta: dict[str, Any], default: str) -> tuple[Path, bytes, str]:
    """(path, bytes, SHA-256) of the estimator's weights file, read once."""
    name = meta["estimator"].get("model_file", default)
    path = bundle_member(Path(directory), name, "estimator.model_file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{directory}: model file {path.name} is missing.") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the model file ({exc}).") from None
    return path, data, sha256_bytes(data)


# -- LightGBM -------------------------------------------------------------------------


class LightGBMEstimator(_CompiledScoring):
    """A fitted LightGBM booster; ``predict_proba`` always returns ``(n, n_classes)``."""

    kind = "lightgbm"
    name = "lightgbm"

    def __init__(self, booster: Any, n_classes: int) -> None:
        self.booster = booster
        self.n_classes = n_classes
        self._init_scoring()

    @property
    def n_trees(self) -> int:
        """Boosting rounds kept (each holds one tree per class for a multiclass model)."""
        return int(self.booster.current_iteration())

    def class_booster(self, c: int) -> Any:
        """A booster of class ``c``'s trees alone: its raw score is the full model's for class ``c``.

        LightGBM's ``pred_contrib`` explains every class at once; TreeSHAP of one class
        needs only that class's trees (1/``n_classes`` of them), so explanations that ask for
        two classes run on these (values identical: the same trees, the same algorithm).
        A binary model has one score: its booster is returned as it is.
        """
        if self.n_classes <= 2:
            return self.booster
        cache: dict[int, Any] = self.__dict__.setdefault("_class_boosters", {})
        booster = cache.get(int(c))
        if booster is None:
            import lightgbm as lgb

            if "_model_text" not in self.__dict__:
                self._model_text = self.booster.model_to_string()
            text = class_model_text(self._model_text, int(c), self.n_classes)
            booster = cache[int(c)] = lgb.Booster(model_str=text)
        return booster

    def class_contributions(self, c: int, x: np.ndarray) -> np.ndarray:
        """LightGBM's TreeSHAP of class ``c``'s raw score: ``(n, F + 1)``, contributions then the bias.

        Runs on :meth:`class_booster` with the thread policy's thread count (one in
        ``detect``, where it shares the machine with the scoring loop).
        """
        x64 = np.asarray(x, dtype=np.float64)
        return np.asarray(self.class_booster(c).predict(x64, pred_contrib=True, num_threads=_threads()))

    def _native_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.asarray(self.booster.predict(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        if self.n_classes == 2 and p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        return p.astype(np.float32)

    def _build_tables(self) -> TreeTables:
        return tables_from_lightgbm(self.booster.model_to_string(), self.booster.num_feature(), "lightgbm")

    def save(self, directory: Path) -> dict[str, Any]:
        data = self.booster.model_to_string().encode()
        (Path(directory) / "lightgbm.txt").write_bytes(data)
        if self.backend != "native":
            self._cache_compiled(Path(directory), "lightgbm.txt", sha256_bytes(data))
        return {"model_file": "lightgbm.txt", "n_classes": self.n_classes}


def class_model_text(model_text: str, c: int, n_classes: int) -> str:
    """A multiclass LightGBM model file cut down to class ``c``'s trees, as a one-output model.

    A multiclass model holds ``n_classes`` trees per round, tree ``k`` adding to class
    ``k % n_classes``; the returned text keeps those of class ``c`` (renumbered), one
    tree per round and a raw ``regression`` objective, so its raw score equals the full
    model's raw score of class ``c``. BundleError when the text is not a LightGBM model.
    """
    head, sep, rest = model_text.partition("\nTree=0\n")
    trees, sep2, _ = rest.partition("\nend of trees")
    if not sep or not sep2:
        raise BundleError("lightgbm model text: no 'Tree=0' ... 'end of trees' section.")
    blocks = ("Tree=0\n" + trees).strip("\n").split("\n\n\n")
    header = []
    for line in head.split("\n"):
        key = line.partition("=")[0]
        if key in ("num_class", "num_tree_per_iteration"):
            line = f"{key}=1"
        elif key == "objective":
            line = "objective=regression"
        elif key == "tree_sizes":
            continue  # sizes of the full model's trees; LightGBM parses without it
        header.append(line)
    mine = [b.partition("\n")[2] for i, b in enumerate(blocks) if i % n_classes == c]
    body = "\n\n\n".join(f"Tree={j}\n{b}" for j, b in enumerate(mine))
    return "\n".join(header) + "\n" + body + "\n\n\nend of trees\n"


@register_estimator("lightgbm")
def _load_lightgbm(
    directory: Path, meta: dict[str, Any], n_features: int, n_classes: int
) -> LightGBMEstimator:
    import lightgbm as lgb

    path, data, sha = _read_member(directory, meta, "lightgbm.txt")
    try:
        booster = lgb.Booster(model_str=data.decode())
    except Exception as exc:  # lightgbm raises its own LightGBMError; bad bytes a UnicodeDecodeError
        raise BundleError(f"{path}: not a LightGBM model: {exc}") from None
    if booster.num_feature() != n_features:
        raise BundleError(
            f"{path}: model expects {booster.num_feature()} features; the bundle's preprocessing gives "
            f"{n_features}."
        )
    est = LightGBMEstimator(booster, n_classes)
    est._bind(Path(directory), path.name if path.parent == Path(directory) else str(path), sha)
    return est


def _fit_lightgbm(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    seed: int,
    params: dict[str, Any],
    progress: bool,
) -> tuple[LightGBMEstimator, History]:
    import lightgbm as lgb

    p = {**LIGHTGBM_PARAMS, **params}
    rounds = int(p.pop("num_boost_round"))
    patience = int(p.pop("early_stopping_rounds"))
    binary = n_classes == 2
    objective = {"objective": "binary"} if binary else {"objective": "multiclass", "num_class": n_classes}
    loss_name, error_name = ("binary_logloss", "binary_error") if binary else ("multi_logloss", "multi_error")
    lgb_params = {
        **objective,
        **p,
        "metric": [loss_name, error_name],  # early stopping follows the first: the validation log-loss
        "seed": seed,
        "num_threads": _threads(),
        "verbosity": -1,
        "deterministic": True,
    }
    t0 = time.perf_counter()
    train_set = lgb.Dataset(x_tr, label=y_tr, free_raw_data=False)
    has_val = len(y_va) > 0
    valid_sets = [train_set] + ([lgb.Dataset(x_va, label=y_va, reference=train_set)] if has_val else [])
    valid_names = ["training", "validation"][: len(valid_sets)]
    records: list[dict[str, Any]] = []
    bar = _Progress("lightgbm", rounds, "it", progress)
    last = [time.perf_counter()]
    nan = float("nan")

    def record(env: Any) -> None:
        now = time.perf_counter()
        got = {(r[0], r[1]): float(r[2]) for r in env.evaluation_result_list}
        it = env.iteration - env.begin_iteration + 1
        seconds = now - last[0]
        last[0] = now
        rec = {
            "epoch": it,
            "trees": it,
            "loss": got.get(("training", loss_name), nan),
            "accuracy": 1.0 - got.get(("training", error_name), nan),
            "val_loss": got.get(("validation", loss_name), nan),
            "val_accuracy": 1.0 - got.get(("validation", error_name), nan),
            "lr": float(p["learning_rate"]),
            "seconds": seconds,
            "train_rows_per_s": len(y_tr) / max(seconds, 1e-9),
        }
        records.append(rec)
        bar.update(it, val_loss=rec["val_loss"], val_acc=rec["val_accuracy"])

    record.order = 25  # type: ignore[attr-defined]  # after evaluation, before early stopping (30)
    callbacks: list[Callable[..., None]] = [record]
    if has_val and patience > 0:
        callbacks.append(lgb.early_stopping(patience, first_metric_only=True, verbose=False))
    try:
        booster = lgb.train(
            lgb_params, train_set, num_boost_round=rounds, valid_sets=valid_sets, valid_names=valid_names,
            callbacks=callbacks,
        )  # fmt: skip
    finally:
        bar.close()
    ran = booster.current_iteration()
    best = booster.best_iteration if 0 < booster.best_iteration <= ran else ran
    if best < ran:
        # keep only the trees up to the best validation round
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    est = LightGBMEstimator(booster, n_classes)
    history = History(records)
    history.best_epoch = best
    history.stopped_early = best < len(records) and len(records) < rounds
    log.debug("lightgbm: %d rounds run, %d kept (%.1fs)", ran, best, time.perf_counter() - t0)
    return est, history


# -- Random forest ----------------------------------------------------------------------

_FOREST_KEYS = ("left", "right", "feature", "threshold", "value", "roots")


class ForestEstimator(_CompiledScoring):
    """A random forest stored as flat node arrays, scored by the compiled kernel or NumPy.

    Attributes
    ----------
    left, right: child node index (global over all trees); -1 at leaves.
    feature: split feature per node (-2 at leaves); threshold: go left when ``x <= threshold``.
    value: class distribution per node, ``(n_nodes, n_classes)``, rows sum to 1 at leaves.
    roots: index of each tree's root node.
    """

    kind = "random_forest"
    name = "random_forest"
    _native_float64 = False  # scikit-learn casts rows to float32 itself

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
    ) -> None:
        self.left, self.right, self.feature = left, right, feature
        self.threshold, self.value, self.roots = threshold, value, roots
        self._init_scoring()

    @classmethod
    def from_sklearn(cls, forest: Any, n_classes: int) -> ForestEstimator:
        """Flatten a fitted ``RandomForestClassifier``; classes absent in training get probability 0."""
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        cols = np.asarray(forest.classes_, dtype=np.int64)
        for est in forest.estimators_:
            t = est.tree_
            leaf = t.children_left < 0
            lefts.append(np.where(leaf, -1, t.children_left + offset))
            rights.append(np.where(leaf, -1, t.children_right + offset))
            feats.append(t.feature.astype(np.int32))
            thrs.append(t.threshold.astype(np.float64))
            v = t.value[:, 0, :].astype(np.float64)
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
            full = np.zeros((t.node_count, n_classes), dtype=np.float32)
            full[:, cols] = v
            vals.append(full)
            roots.append(offset)
            offset += t.node_count
        return cls(
            np.concatenate(lefts).astype(np.int64),
            np.concatenate(rights).astype(np.int64),
            np.concatenate(feats),
            np.concatenate(thrs),
            np.concatenate(vals),
            np.asarray(roots, dtype=np.int64),
        )

    @property
    def n_features(self) -> int:
        return int(self.feature.max(initial=-1)) + 1

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def _tree_values(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Each tree's leaf distribution for rows ``x``, ``(n, n_classes)`` float32, tree by tree (NumPy)."""
        # scikit-learn compares float32 inputs against float64 thresholds; do the same
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        n = x.shape[0]
        rows = np.arange(n)
        for root in self.roots:  # one tree at a time keeps memory at O(n)
            node = np.full(n, root, dtype=np.int64)
            active = self.left[node] >= 0
            while active.any():
                idx = node[active]
                go_left = x[rows[active], self.feature[idx]] <= self.threshold[idx]
                node[active] = np.where(go_left, self.left[idx], self.right[idx])
                active = self.left[node] >= 0
            yield self.value[node]

    def _native_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((np.asarray(x).shape[0], self.value.shape[1]), dtype=np.float64)
        for v in self._tree_values(x):
            out += v
        return (out / max(len(self.roots), 1)).astype(np.float32)

    def staged_proba(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """The probabilities of the first 1, 2, ... trees' vote (float64), one array per tree."""
        out = np.zeros((np.asarray(x).shape[0], self.value.shape[1]), dtype=np.float64)
        for k, v in enumerate(self._tree_values(x), start=1):
            out += v
            yield out / k

    def _build_tables(self) -> TreeTables:
        return tables_from_forest(
            self.left, self.right, self.feature, self.threshold, self.value, self.roots, self.n_features,
            "random_forest",
        )  # fmt: skip

    def save(self, directory: Path) -> dict[str, Any]:
        import io

        arrays = dict(
            zip(
                _FOREST_KEYS,
                (self.left, self.right, self.feature, self.threshold, self.value, self.roots),
                strict=True,
            )
        )
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        data = buf.getvalue()
        (Path(directory) / "forest.npz").write_bytes(data)
        if self.backend != "native":
            self._cache_compiled(Path(directory), "forest.npz", sha256_bytes(data))
        return {"model_file": "forest.npz", "trees": len(self.roots), "nodes": len(self.left)}


@register_estimator("random_forest")
def _load_forest(directory: Path, meta: dict[str, Any], n_features: int, n_classes: int) -> ForestEstimator:
    import io

    path, data, sha = _read_member(directory, meta, "forest.npz")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in _FOREST_KEYS}
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{path}: not a forest written by iomt-ids ({exc}).") from None
    est = ForestEstimator(**arrays)
    n = len(est.left)
    consistent = (
        all(len(arrays[k]) == n for k in ("right", "feature", "threshold", "value"))
        and est.value.ndim == 2
        and est.value.shape[1] == n_classes
        and est.n_features <= n_features
        and ((est.left == -1) | ((est.left >= 0) & (est.left < n))).all()
        and ((est.right == -1) | ((est.right >= 0) & (est.right < n))).all()
    )
    if not consistent:
        raise BundleError(
            f"{path}: forest arrays do not fit the bundle ({n_classes} classes, {n_features} features)."
        )
    est._bind(Path(directory), path.name if path.parent == Path(directory) else str(path), sha)
    return est


def _fit_forest(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    seed: int,
    params: dict[str, Any],
    progress: bool,
) -> tuple[ForestEstimator, History]:
    """Grow the forest in chunks of trees (``warm_start``: the same trees as one fit) to report progress."""
    from sklearn.ensemble import RandomForestClassifier

    p = {**RANDOM_FOREST_PARAMS, **params}
    total = int(p.pop("n_estimators"))
    threads = _threads()
    chunk = max(threads, math.ceil(total / 20))
    rf = RandomForestClassifier(**p, n_estimators=0, warm_start=True, random_state=seed, n_jobs=threads)
    bar = _Progress("random_forest", total, "trees", progress)
    fit_seconds = []
    try:
        done = 0
        while done < total:
            t0 = time.perf_counter()
            step = min(chunk, total - done)
            rf.set_params(n_estimators=done + step)
            rf.fit(x_tr, y_tr)
            fit_seconds += [(time.perf_counter() - t0) / step] * step
            done += step
            bar.update(done)
    finally:
        bar.close()
    est = ForestEstimator.from_sklearn(rf, n_classes)
    # the curve: loss and accuracy of the first k trees' vote, on train and validation rows
    records: list[dict[str, Any]] = []
    for k, (p_tr, p_va) in enumerate(
        zip(est.staged_proba(x_tr), est.staged_proba(x_va), strict=True), start=1
    ):
        records.append(
            {
                "epoch": k,
                "trees": k,
                "loss": _log_loss(y_tr, p_tr),
                "accuracy": _accuracy(y_tr, p_tr),
                "val_loss": _log_loss(y_va, p_va),
                "val_accuracy": _accuracy(y_va, p_va),
                "lr": 0.0,
                "seconds": fit_seconds[k - 1],
                "train_rows_per_s": len(y_tr) / max(fit_seconds[k - 1], 1e-9),
            }
        )
    history = History(records)
    history.best_epoch = len(records)  # a forest keeps every tree
    return est, history


def fit_tree(
    name: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[LightGBMEstimator | ForestEstimator, History]:
    """Fit the tree model ``name`` on preprocessed rows; ``config.seed`` seeds it.

    ``params`` override :data:`LIGHTGBM_PARAMS` / :data:`RANDOM_FOREST_PARAMS`.
    The deep-learning fields of ``config`` (learning rate, batch size ...) do not apply.
    ``progress``: a bar on a terminal, else a log line every few iterations (see :class:`_Progress`).
    The history has one record per boosting iteration (LightGBM) or per tree (forest);
    ``history[history.best_epoch - 1]`` describes the model returned.
    """
    if name not in TREE_MODELS:
        raise ConfigError(f"tree model must be one of {list(TREE_MODELS)}; got {name!r} instead.")
    fit = _fit_lightgbm if name == "lightgbm" else _fit_forest
    t0 = time.perf_counter()
    est, history = fit(x_tr, y_tr, x_va, y_va, n_classes, config.seed, dict(params or {}), progress)
    best = history[(history.best_epoch or len(history)) - 1]
    log.info(
        "%s: %d %s kept; train acc %.4f, validation acc %.4f, validation loss %.4f (%.1fs)",
        name, best["trees"], "rounds" if name == "lightgbm" else "trees", best["accuracy"],
        best["val_accuracy"], best["val_loss"], time.perf_counter() - t0,
    )  # fmt: skip
    return est, history
