"""A soft vote of registered models: ``p = Σ wᵢ·pᵢ``, the weights chosen on validation rows.

The ensemble sits behind the bundle's own preprocessing like any estimator. That
preprocessing is the trees' one (cleaning and the zero-variance filter, no scaling), so
every member sees the same cleaned columns; a member that needs more (the deep models:
``sign·log1p`` on heavy-tailed columns and standard scaling) carries its own fitted
:class:`~iomt_ids.data.preprocess.Preprocessor`, whose input columns are the bundle's
kept columns.

Layout inside the bundle folder::

    ensemble.json        the manifest: every member's name, kind, weight, preprocessing
                         state, folder and the SHA-256 of each of its weight files
    members/0/ ...       member 0's own files (e.g. model.safetensors)
    members/1/ ...       member 1's own files (e.g. lightgbm.txt)

The manifest is the estimator's one ``model_file``, so the bundle's version id (a digest
of the weight files) covers every member's weights and preprocessing through their
hashes. bundle.json repeats the members under ``estimator.members`` (with the selection
record under ``estimator.selection``); loading treats both as untrusted: the two must
agree, every folder and file must stay inside the bundle folder
(:func:`~iomt_ids.models.base.bundle_member`), every member file must match its
recorded SHA-256, and each member is built by its registered loader. Ensembles do not
nest.

:func:`choose_weight` is the selection rule: a grid over ``w`` in 0, 0.05, ..., 1 for
``p = w·p_a + (1 − w)·p_b``, maximising macro-F1 on the rows given (the validation
split), ties broken by the lower log-loss.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.exceptions import BundleError, ConfigError
from iomt_ids.models.base import (
    BUNDLE_META,
    ESTIMATORS,
    WEIGHT_FIELDS,
    Estimator,
    bundle_member,
    json_default,
    register_estimator,
    sha256_file,
    weight_files,
)

__all__ = [
    "ENSEMBLE_FORMAT",
    "MANIFEST",
    "MAX_MEMBERS",
    "WEIGHT_GRID",
    "EnsembleEstimator",
    "Member",
    "blend",
    "choose_weight",
    "log_loss",
    "macro_f1",
]

#: Format tag of the manifest file.
ENSEMBLE_FORMAT = "iomt-ids-ensemble/1"
#: The manifest file inside the bundle folder (the estimator's ``model_file``).
MANIFEST = "ensemble.json"
#: Folder of the members' files inside the bundle folder.
MEMBERS_DIR = "members"
#: Most members a bundle may declare.
MAX_MEMBERS = 8
#: Weights of the first member tried by :func:`choose_weight`: 0, 0.05, ..., 1.
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))


# -- scores used for the selection ---------------------------------------------------------


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y`` or ``pred`` (scikit-learn's default labels)."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if not len(y):
        return float("nan")
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n_classes), where=present)
    return float(f1[present].mean())


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped at 1e-15)."""
    if not len(y):
        return float("nan")
    p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.log(p).mean())


def blend(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``Σ wᵢ·pᵢ`` with rows renormalised to sum to 1, as float32."""
    if len(probas) != len(weights) or not probas:
        raise ConfigError(
            f"blend: need one weight per member; got {len(probas)} members, {len(weights)} weights."
        )
    out = np.zeros(np.shape(probas[0]), dtype=np.float64)
    for p, w in zip(probas, weights, strict=True):
        if w:
            out += float(w) * np.asarray(p, dtype=np.float64)
    total = out.sum(axis=1, keepdims=True)
    out = np.divide(out, total, out=np.full_like(out, 1.0 / max(out.shape[1], 1)), where=total > 0)
    return out.astype(np.float32)


def choose_weight(
    p_a: np.ndarray, p_b: np.ndarray, y: np.ndarray, grid: Sequence[float] = WEIGHT_GRID
) -> dict[str, Any]:
    """The weight ``w`` of ``p = w·p_a + (1 − w)·p_b`` with the best macro-F1 on ``(p_a, p_b, y)``.

    Pass validation rows only. Ties in macro-F1 go to the lower log-loss, then to the
    earlier grid point.

    Returns
    -------
    dict
        ``weight``, ``macro_f1``, ``log_loss`` of the choice and ``grid``: one
        ``{"weight", "macro_f1", "log_loss"}`` per grid point.
    """
    y = np.asarray(y, dtype=np.int64)
    if p_a.shape != p_b.shape or p_a.ndim != 2 or p_a.shape[0] != len(y):
        raise ConfigError(
            f"choose_weight: probabilities {p_a.shape} and {p_b.shape} must both be (rows, classes) for "
            f"{len(y)} labels."
        )
    if not len(y):
        raise ConfigError("choose_weight: no validation rows to choose the weights on.")
    bad = [w for w in grid if not 0.0 <= w <= 1.0]
    if bad or not grid:
        raise ConfigError(f"choose_weight: grid weights must lie in [0, 1]; got {list(grid)}.")
    n_classes = p_a.shape[1]
    table = []
    for w in grid:
        p = blend([p_a, p_b], [w, 1.0 - w])
        table.append(
            {
                "weight": float(w),
                "macro_f1": macro_f1(y, p.argmax(axis=1), n_classes),
                "log_loss": log_loss(y, p),
            }
        )
    best = min(table, key=lambda r: (-r["macro_f1"], r["log_loss"]))  # min() keeps the first of equals
    return {**best, "grid": table}


# -- the estimator -------------------------------------------------------------------------


@dataclass
class Member:
    """One member: a fitted estimator, its weight and its own preprocessing (None: none).

    ``preprocessor`` maps the bundle's preprocessed rows (the bundle's kept columns) to
    this member's input.
    """

    estimator: Estimator
    weight: float
    preprocessor: Preprocessor | None = None

    @property
    def name(self) -> str:
        return str(self.estimator.name)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.preprocessor is not None:
            x = self.preprocessor.transform(x, source=f"ensemble member {self.name}")
        return self.estimator.predict_proba(x)


class EnsembleEstimator:
    """A soft vote of fitted members; ``predict_proba`` rows sum to 1.

    Parameters
    ----------
    members : sequence of Member
        One to :data:`MAX_MEMBERS` members with weights in [0, 1] summing to 1.
    selection : dict, optional
        How the members and weights were chosen (validation scores); kept in bundle.json.
    """

    kind = "ensemble"
    name = "ensemble"

    def __init__(self, members: Sequence[Member], selection: dict[str, Any] | None = None) -> None:
        members = list(members)
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise ConfigError(f"ensemble: need 1 to {MAX_MEMBERS} members; got {len(members)}.")
        weights = [m.weight for m in members]
        if any(not (isinstance(w, int | float) and 0.0 <= w <= 1.0) for w in weights) or not math.isclose(
            sum(weights), 1.0, abs_tol=1e-6
        ):
            raise ConfigError(f"ensemble: member weights must lie in [0, 1] and sum to 1; got {weights}.")
        if any(isinstance(m.estimator, EnsembleEstimator) for m in members):
            raise ConfigError("ensemble: a member cannot itself be an ensemble.")
        self.members = members
        self.selection = dict(selection or {})

    @property
    def weights(self) -> list[float]:
        return [float(m.weight) for m in self.members]

    def member_probas(self, x: np.ndarray) -> list[np.ndarray]:
        """Each member's probabilities for the bundle's preprocessed rows ``x``."""
        return [m.predict_proba(x) for m in self.members]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return blend(self.member_probas(x), self.weights)

    def describe(self) -> str:
        """``0.45·gru_dnn + 0.55·lightgbm``."""
        return " + ".join(f"{m.weight:.2f}·{m.name}" for m in self.members)

    def save(self, directory: Path) -> dict[str, Any]:
        """Write each member under ``members/<i>/`` and the manifest; returns bundle.json's estimator fields."""
        directory = Path(directory)
        records = []
        for i, m in enumerate(self.members):
            sub = f"{MEMBERS_DIR}/{i}"
            (directory / sub).mkdir(parents=True, exist_ok=True)
            est_meta = _plain(m.estimator.save(directory / sub))
            files = weight_files(est_meta)
            if not files:
                raise BundleError(
                    f"{directory}: ensemble member {i} ({m.name}) named no weights file (expected one of "
                    f"{list(WEIGHT_FIELDS)} in what its save() returned)."
                )
            records.append(
                {
                    "name": m.name,
                    "dir": sub,
                    "weight": float(m.weight),
                    "estimator": {"kind": m.estimator.kind, **est_meta},
                    "preprocessing": None if m.preprocessor is None else _plain(m.preprocessor.to_dict()),
                    "sha256": {f: sha256_file(directory / sub / f) for f in files},
                }
            )
        manifest = {"format": ENSEMBLE_FORMAT, "members": records}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return {"model_file": MANIFEST, "members": records, "selection": _plain(self.selection)}


def _plain(obj: Any) -> Any:
    """``obj`` as plain JSON values (tuples to lists, NumPy scalars to numbers)."""
    return json.loads(json.dumps(obj, default=json_default))


# -- loading (bundle.json is untrusted) ----------------------------------------------------


def _member_kind(source: Path, field: str, name: Any) -> str:
    """The estimator kind a registered, non-ensemble model ``name`` saves as; imports its loader."""
    from iomt_ids.models.registry import MODELS

    allowed = [n for n, e in MODELS.items() if e.kind in ("torch", "tree")]
    if name not in allowed:
        raise BundleError(f"{source}: field {field!r} = {name!r} must be one of {allowed}.")
    entry = MODELS[name]
    cls = entry.resolve()  # importing its module registers the estimator loader
    return "torch" if entry.kind == "torch" else str(cls.kind)


def _member_preprocessor(source: Path, field: str, state: Any, kept: Sequence[str]) -> Preprocessor | None:
    if state is None:
        return None
    if not isinstance(state, dict):
        raise BundleError(f"{source}: field {field!r} must be an object or null; got {type(state).__name__}.")
    try:
        pre = Preprocessor.from_dict(state)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BundleError(f"{source}: field {field!r} is not a fitted preprocessing state ({exc}).") from None
    n = len(pre.kept_columns_)
    if list(pre.input_columns) != list(kept):
        raise BundleError(
            f"{source}: field {field!r}: input columns {list(pre.input_columns)} must be the bundle's "
            f"preprocessed columns {list(kept)}."
        )
    if (
        not n
        or any(c not in pre.input_columns for c in pre.kept_columns_)
        or set(pre.inf_caps_) - set(pre.input_columns)
        or pre.mean_ is None
        or pre.scale_ is None
        or pre.mean_.shape != (n,)
        or pre.scale_.shape != (n,)
        or not (np.isfinite(pre.mean_).all() and np.isfinite(pre.scale_).all() and (pre.scale_ != 0).all())
    ):
        raise BundleError(
            f"{source}: field {field!r}: kept columns, mean and std must list the same {n} columns with "
            "finite values (std non-zero)."
        )
    return pre


@register_estimator("ensemble")
def _load_ensemble(
    directory: Path, meta: dict[str, Any], n_features: int, n_classes: int
) -> EnsembleEstimator:
    directory = Path(directory)
    source = directory / BUNDLE_META
    est_meta = meta["estimator"]
    records = est_meta.get("members")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_MEMBERS:
        raise BundleError(
            f"{source}: field 'estimator.members' must list 1 to {MAX_MEMBERS} members; got {records!r:.200}."
        )
    manifest_path = bundle_member(directory, est_meta.get("model_file", MANIFEST), "estimator.model_file")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{directory}: ensemble manifest {manifest_path.name} is missing.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not a readable ensemble manifest ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ENSEMBLE_FORMAT:
        raise BundleError(f"{manifest_path}: field 'format' must be {ENSEMBLE_FORMAT!r}.")
    if manifest.get("members") != records:
        raise BundleError(
            f"{source}: field 'estimator.members' does not match the manifest {manifest_path.name} (one of "
            "them was edited after the bundle was saved)."
        )
    kept = meta.get("preprocessing", {}).get("kept_columns", [])
    members = []
    for i, rec in enumerate(records):
        field = f"estimator.members[{i}]"
        if not isinstance(rec, dict):
            raise BundleError(f"{source}: field {field!r} must be an object; got {type(rec).__name__}.")
        name = rec.get("name")
        expected_kind = _member_kind(source, f"{field}.name", name)
        est = rec.get("estimator")
        if not isinstance(est, dict) or est.get("kind") != expected_kind:
            got = est.get("kind") if isinstance(est, dict) else est
            raise BundleError(
                f"{source}: field '{field}.estimator.kind' must be {expected_kind!r} for model {name!r}; "
                f"got {got!r}."
            )
        weight = rec.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            raise BundleError(f"{source}: field '{field}.weight' must be a number in [0, 1]; got {weight!r}.")
        sub = rec.get("dir")
        member_dir = bundle_member(directory, sub, f"{field}.dir")
        if not member_dir.is_dir():
            raise BundleError(f"{source}: field '{field}.dir' = {sub!r} is not a folder in {directory}.")
        digests = rec.get("sha256")
        if not isinstance(digests, dict):
            raise BundleError(f"{source}: field '{field}.sha256' must map each weight file to its SHA-256.")
        names = [k for k in WEIGHT_FIELDS if k in est]
        if not names:
            raise BundleError(
                f"{source}: field '{field}.estimator' names no weights file ({list(WEIGHT_FIELDS)})."
            )
        for key in names:
            path = bundle_member(directory, f"{sub}/{est[key]}", f"{field}.estimator.{key}")
            want = digests.get(est[key])
            if not isinstance(want, str):
                raise BundleError(f"{source}: field '{field}.sha256' has no digest for {est[key]!r}.")
            if not path.is_file():
                raise BundleError(
                    f"{source}: field '{field}.estimator.{key}': member file {path} is missing."
                )
            got = sha256_file(path)
            if got != want:
                raise BundleError(
                    f"{source}: field '{field}.sha256': {path} has SHA-256 {got[:16]}..., expected "
                    f"{want[:16]}... (the member file was changed after the bundle was saved)."
                )
        pre = _member_preprocessor(source, f"{field}.preprocessing", rec.get("preprocessing"), kept)
        n_in = n_features if pre is None else pre.n_features_out
        try:
            estimator = ESTIMATORS[expected_kind](
                member_dir, {"model_name": name, "estimator": est}, n_in, n_classes
            )
        except BundleError as exc:
            raise BundleError(f"{source}: field {field!r} (model {name!r}): {exc}") from None
        members.append(Member(estimator, float(weight), pre))
    total = sum(m.weight for m in members)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise BundleError(f"{source}: field 'estimator.members': weights must sum to 1; got {total}.")
    selection = est_meta.get("selection")
    return EnsembleEstimator(members, selection if isinstance(selection, dict) else None)
