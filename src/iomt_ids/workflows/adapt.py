"""``iomt-ids adapt``: a trained bundle + benign captures of a site -> a site bundle.

Steps (:func:`adapt_site`):

1. read the site's benign windows: every capture is cut into the W = 10 and
   W = 100 streams exactly as ``detect`` cuts them (final partial windows left
   out), or feature CSVs of benign windows are read (``--benign-csv``; each row
   goes to the stream of its ``Number``);
2. per stream, fit a :class:`~iomt_ids.adaptation.novelty.NoveltyModel` with a
   conformal threshold for the asked false-alarm rate: ``--false-alarms-per-hour``
   N is split evenly over the streams and divided by the stream's windows per
   hour in the calibration traffic;
3. fine-tune the classifier with the site's windows as ``Benign`` and replay of
   the base model's training rows (:mod:`~iomt_ids.adaptation.finetune`); the
   attack recall on the base model's original validation split is measured
   before and after;
4. write the site folder (:class:`~iomt_ids.adaptation.site.SiteBundle`), a
   report and the novelty score distributions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iomt_ids.adaptation.finetune import FinetuneConfig, finetune, recall_report, stratified_sample
from iomt_ids.adaptation.novelty import NOVELTY_COLUMNS, NoveltyModel
from iomt_ids.adaptation.site import SiteBundle, SitePolicy
from iomt_ids.artifacts import ModelBundle, load_bundle
from iomt_ids.detection.detector import BENIGN
from iomt_ids.exceptions import BundleError, ConfigError, DataError

__all__ = [
    "AdaptConfig",
    "BenignWindows",
    "adapt_site",
    "benign_windows_from_captures",
    "benign_windows_from_csv",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of one adaptation.

    Attributes
    ----------
    model : Path
        RUN_DIR of the trained base bundle (v2, with a ``Benign`` class).
    out : Path
        SITE_DIR to write.
    benign : tuple of Path
        Benign captures of the site (pcap/pcapng, gzip allowed).
    benign_csv : tuple of Path
        Feature CSVs of benign windows (the dataset's v2 header).
    false_alarms_per_hour : float
        Target novelty false alarms per hour of traffic like the calibration capture.
    windows : tuple of int
        Window streams to baseline (those ``detect`` runs: 10 and 100).
    finetune : bool
        Fine-tune the classifier (needs the base model's training rows).
    replay_data : Path or None
        Folder of the base model's training data; default: the path its bundle records.
    margin, k : novelty threshold factor and neighbour rank.
    seed : int
    progress : bool
    """

    model: Path
    out: Path
    benign: tuple[Path, ...] = ()
    benign_csv: tuple[Path, ...] = ()
    false_alarms_per_hour: float = 1.0
    windows: tuple[int, ...] = (10, 100)
    finetune: bool = True
    replay_data: Path | None = None
    margin: float = 1.25
    k: int = 3
    anomaly_factor: float = 3.0
    seed: int = 0
    progress: bool = True
    finetune_config: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        if not self.benign and not self.benign_csv:
            raise ConfigError(
                "adapt: give at least one benign capture (--benign) or feature CSV (--benign-csv)."
            )
        if not self.false_alarms_per_hour > 0:
            raise ConfigError(
                f"false_alarms_per_hour must be > 0; got {self.false_alarms_per_hour!r} instead."
            )
        if not self.windows or any(w < 2 for w in self.windows):
            raise ConfigError(f"windows must be sizes >= 2; got {self.windows!r}.")
        if self.margin < 1.0 or self.k < 1 or self.anomaly_factor <= 1.0:
            raise ConfigError("margin must be >= 1, k >= 1 and anomaly_factor > 1.")


@dataclass
class BenignWindows:
    """The site's benign windows per stream and how much time they cover."""

    rows: dict[int, pd.DataFrame]
    seconds: float
    sources: list[dict[str, Any]]

    def per_hour(self, w: int) -> float:
        return len(self.rows[w]) / (self.seconds / 3600.0) if self.seconds > 0 else float("nan")


def benign_windows_from_captures(
    paths: Sequence[Path], windows: Sequence[int], progress: bool = False
) -> BenignWindows:
    """Cut each capture into every window stream, as ``detect`` does (full windows only)."""
    from iomt_ids.features.packets import read_capture
    from iomt_ids.features.windows import WindowBatch, WindowExtractor

    parts: dict[int, list[pd.DataFrame]] = {w: [] for w in windows}
    seconds = 0.0
    sources = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: benign capture not found.")
        extractors = {w: WindowExtractor(window=w, release="v2", meta=False) for w in windows}
        got: dict[int, list[WindowBatch]] = {w: [] for w in windows}
        t_min, t_max, packets = math.inf, -math.inf, 0
        for batch in read_capture(path):
            if not len(batch):
                continue
            packets += len(batch)
            t_min, t_max = min(t_min, float(batch.ts.min())), max(t_max, float(batch.ts.max()))
            for w, ex in extractors.items():
                got[w].append(ex.feed(batch.ts, batch.frames, batch.linktype))
        counts = {}
        for w in windows:
            wb = WindowBatch.concat(got[w], "v2")
            parts[w].append(wb.features)
            counts[w] = len(wb)
        span = max(0.0, t_max - t_min) if packets else 0.0
        seconds += span
        sources.append({"capture": str(path), "packets": packets, "seconds": round(span, 3),
                        "windows": {str(w): n for w, n in counts.items()}})  # fmt: skip
        log.info("%s: %d packets over %.0f s -> %s windows", path.name, packets, span, counts)
    rows = {w: pd.concat(p, ignore_index=True) if p else pd.DataFrame() for w, p in parts.items()}
    return BenignWindows(rows, seconds, sources)


def benign_windows_from_csv(paths: Sequence[Path], windows: Sequence[int]) -> BenignWindows:
    """Read benign feature CSVs; each row joins the stream of its ``Number`` (others are counted and dropped)."""
    from iomt_ids.data.loader import read_rows

    parts: dict[int, list[pd.DataFrame]] = {w: [] for w in windows}
    seconds = 0.0
    sources = []
    for path in paths:
        table, release = read_rows(path)
        if release != "v2":
            raise DataError(f"{path}: site adaptation needs v2 (39-column) rows; got {release}.")
        frame = table.to_pandas()
        number = frame["Number"].to_numpy()
        used = 0
        for w in windows:
            sel = frame[number == w]
            parts[w].append(sel)
            used += len(sel)
        # the windows' own durations (mean IAT x packets) stand in for the capture's time span
        ten = frame[number == min(windows)]
        span = float((ten["IAT"] * ten["Number"]).sum()) if len(ten) else 0.0
        seconds += span
        sources.append({"csv": str(path), "rows": len(frame), "used": used, "dropped_other_window": len(frame) - used,
                        "seconds_estimated": round(span, 3)})  # fmt: skip
    rows = {w: pd.concat(p, ignore_index=True) for w, p in parts.items()}
    return BenignWindows(rows, seconds, sources)


def _merge(a: BenignWindows | None, b: BenignWindows) -> BenignWindows:
    if a is None:
        return b
    rows = {w: pd.concat([a.rows[w], b.rows[w]], ignore_index=True) for w in a.rows}
    return BenignWindows(rows, a.seconds + b.seconds, a.sources + b.sources)


def _original_split(
    base: ModelBundle, replay_data: Path | None, progress: bool, replay_rows: int, seed: int
) -> tuple[Any, ...]:
    """A stratified sample of the base model's training rows, and its original validation split.

    Returns (x_replay, y_replay, x_val, y_val, where). Only the sampled rows and the validation rows are
    copied out of the loaded table (the full training set is never copied as float64).
    """
    from iomt_ids.data.loader import DatasetSplits, load_dataset, load_split
    from iomt_ids.data.split import stratified_split
    from iomt_ids.workflows.train import prepare_splits

    data = base.meta.get("data", {}) if isinstance(base.meta.get("data"), dict) else {}
    if replay_data is not None:
        splits = load_dataset(replay_data, progress=progress)
        where = str(replay_data)
    elif data.get("train_dir") and data.get("test_dir") and Path(data["train_dir"]).is_dir():
        train, test = (
            load_split(data["train_dir"], progress=progress),
            load_split(data["test_dir"], progress=progress),
        )
        splits = DatasetSplits(train, test, Path(data["train_dir"]), Path(data["test_dir"]))
        where = str(data["train_dir"])
    elif data.get("path") and Path(data["path"]).is_dir():
        splits = load_dataset(data["path"], progress=progress)
        where = str(data["path"])
    else:
        raise ConfigError(
            f"adapt: the training data of {base.version} is not at the path its bundle records "
            f"({data.get('train_dir') or data.get('path') or 'none'}); give --replay-data DIR (the folder that "
            "holds its train/ and test/), or --no-finetune to keep the classifier as it is."
        )
    if splits.train.release != base.release:
        raise DataError(f"{where}: replay rows are {splits.train.release}; the model is {base.release}.")
    from iomt_ids.data.protocols import apply_protocol

    tc = base.meta.get("train_config", {}) or {}
    cut = apply_protocol(splits, str(data.get("protocol", "shipped")), seed=int(tc.get("seed", 0)))
    prepared = prepare_splits(cut.splits, base.task)
    y = prepared.y_train
    tr, va = stratified_split(y, float(tc.get("val_fraction", 0.2)), int(tc.get("seed", 0)))
    tr = np.sort(tr[stratified_sample(y[tr], replay_rows, seed)])
    rows = prepared.train.table
    return rows[tr].to_numpy().astype(np.float64), y[tr], rows[va].to_numpy().astype(np.float64), y[va], where


def _plot(models: dict[int, NoveltyModel], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for w, m in models.items():
        fig, ax = plt.subplots(figsize=(6, 3.2))
        s = np.maximum(m.loo_scores, 1e-3)
        ax.hist(s, bins=np.geomspace(s.min(), max(s.max(), m.threshold) * 1.5, 40), color="#4c72b0")
        ax.axvline(m.threshold, color="#c44e52", label=f"threshold {m.threshold:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("novelty (distance to k-th nearest benign window)")
        ax.set_ylabel("calibration windows")
        ax.set_title(f"W = {w}: leave-one-out novelty of the site's benign windows")
        ax.legend()
        fig.tight_layout()
        name = f"novelty_W{w}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def adapt_site(config: AdaptConfig) -> SiteBundle:
    """Build and write a site bundle (see the module docstring); returns it."""
    t0 = time.perf_counter()
    base = load_bundle(config.model)
    if base.release != "v2":
        raise BundleError(f"{config.model}: site adaptation needs a v2 bundle; this one is {base.release}.")
    if BENIGN not in base.classes:
        raise BundleError(f"{config.model}: classes {list(base.classes)} have no {BENIGN!r}.")
    from iomt_ids.features.feature_sets import LEAKY

    leaky = [c for c in base.preprocessor.kept_columns_ if c in LEAKY["v2"]]
    if leaky:
        log.warning(
            "%s sees the window-size columns %s: it can name a W = 10 flood window RECON and a W = 100 scan "
            "window DDoS (in CICIoMT2024 only floods have W = 100 windows). For deployment, train the base "
            "model with --feature-set robust.", base.version, leaky,
        )  # fmt: skip
    benign: BenignWindows | None = None
    if config.benign:
        benign = benign_windows_from_captures(config.benign, config.windows, config.progress)
    if config.benign_csv:
        benign = _merge(benign, benign_windows_from_csv(config.benign_csv, config.windows))
    assert benign is not None
    models: dict[int, NoveltyModel] = {}
    streams: dict[str, Any] = {}
    per_stream_budget = config.false_alarms_per_hour / len(config.windows)
    for w in config.windows:
        frame = benign.rows[w]
        if len(frame) < config.k + 2:
            raise DataError(
                f"adapt: the benign traffic gives {len(frame)} windows of W={w}; need at least {config.k + 2}. "
                "Capture longer (2 minutes of normal traffic is a good start)."
            )
        per_hour = benign.per_hour(w)
        alpha = min(0.5, per_stream_budget / per_hour) if per_hour > 0 else 1e-3
        idx = NoveltyModel.columns_index(list(frame.columns))
        m = NoveltyModel.fit(frame.to_numpy(dtype=np.float64)[:, idx], w, alpha=alpha, k=config.k,
                             margin=config.margin, seed=config.seed)  # fmt: skip
        models[w] = m
        streams[str(w)] = {
            "windows": len(frame),
            "windows_per_hour": round(per_hour, 1),
            "alpha_target": alpha,
            "alpha_bound": m.alpha_bound,
            "threshold": m.threshold,
            "false_alarms_per_hour_bound": round(m.alpha_bound * per_hour, 2),
            "calibration_flagged": int((m.loo_scores > m.threshold).sum()),
        }
        log.info(
            "W=%d: %d benign windows, threshold %.3f, alpha bound %.2e",
            w,
            len(frame),
            m.threshold,
            m.alpha_bound,
        )
    site_raw = pd.concat([benign.rows[w] for w in config.windows], ignore_index=True)
    cols = list(base.input_columns)
    site_x = site_raw[cols].to_numpy(dtype=np.float64)
    tuning: dict[str, Any] = {"method": "none (--no-finetune)"}
    recall: dict[str, Any] = {}
    classifier = base
    if config.finetune:
        x_tr, y_tr, x_va, y_va, where = _original_split(
            base, config.replay_data, config.progress, config.finetune_config.replay_rows, config.seed
        )
        classifier, tuning = finetune(
            base, x_tr, y_tr, x_va, y_va, site_x, config.finetune_config, config.progress
        )
        tuning["replay_data"] = where
        recall = {"before": recall_report(base, x_va, y_va), "after": recall_report(classifier, x_va, y_va)}
        recall["attack_recall_drop"] = round(
            recall["before"]["attack_recall"] - recall["after"]["attack_recall"], 4
        )
    b = list(base.classes).index(BENIGN)
    site_flagged = {
        "base": float((base.predict_proba(site_x, source="site windows").argmax(1) != b).mean()),
        "classifier": float((classifier.predict_proba(site_x, source="site windows").argmax(1) != b).mean()),
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    site = SiteBundle(
        classifier=classifier,
        novelty=models,
        policy=SitePolicy(anomaly_factor=config.anomaly_factor),
        meta={
            "generator": "iomt-ids adapt",
            "base": {"dir": str(config.model), "version": base.version, "task": base.task,
                     "classes": list(base.classes), "metrics": base.meta.get("metrics", {})},
            "calibration": {"sources": benign.sources, "seconds": round(benign.seconds, 3)},
            "false_alarms_per_hour_target": config.false_alarms_per_hour,
            "streams": streams,
            "finetune": tuning,
            "validation_recall": recall,
            "calibration_windows_called_attack": site_flagged,
            "novelty_columns": list(NOVELTY_COLUMNS),
            "window_size_columns_seen_by_classifier": leaky,
            "adapt_seconds": None,
        },
    )  # fmt: skip
    site.meta["adapt_seconds"] = round(time.perf_counter() - t0, 2)
    site.save(out)
    figures = _plot(models, out)
    (out / "adapt-report.md").write_text(_report(site, figures), encoding="utf-8")
    log.info("site bundle %s -> %s (%.1f s)", site.version, out, site.meta["adapt_seconds"])
    return site


def _report(site: SiteBundle, figures: list[str]) -> str:
    m = site.meta
    lines = [
        f"# Site bundle {site.version}",
        "",
        f"Base model: `{m['base']['version']}` ({m['base']['task']} classes), from `{m['base']['dir']}`.",
        f"Calibration traffic: {m['calibration']['seconds']:.0f} s of benign traffic "
        f"({', '.join(s.get('capture', s.get('csv', '?')) for s in m['calibration']['sources'])}).",
        "",
        "| stream | benign windows | windows/hour | threshold | α target | α certified | novelty false alarms/hour (bound) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, s in m["streams"].items():
        lines.append(
            f"| W = {w} | {s['windows']} | {s['windows_per_hour']:,.0f} | {s['threshold']:.3f} | "
            f"{s['alpha_target']:.2e} | {s['alpha_bound']:.2e} | {s['false_alarms_per_hour_bound']} |"
        )
    lines += [
        "",
        "The bound holds per window for traffic exchangeable with the calibration capture (split-free, "
        "leave-one-out conformal); a window alerts only when it is also called an attack by the classifier "
        f"(or is more than {site.policy.anomaly_factor:g}x beyond the threshold: category ANOMALY), so the "
        "alert rate on such traffic is at most this bound. A longer calibration capture certifies a smaller rate.",
        "",
        f"Classifier: {m['finetune'].get('method')}.",
    ]
    r = m.get("validation_recall") or {}
    if r:
        lines += [
            "",
            f"Attack recall on the base model's original validation split ({r['before']['rows']} rows): "
            f"{r['before']['attack_recall']:.4f} before, {r['after']['attack_recall']:.4f} after "
            f"(drop {r['attack_recall_drop']:+.4f}).",
        ]
    f = m["calibration_windows_called_attack"]
    lines += [
        f"Calibration windows the classifier calls an attack: {f['base']:.1%} before, {f['classifier']:.1%} after.",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    return "\n".join(lines)
