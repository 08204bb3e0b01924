"""The site-adapted detector: alert only on windows unlike the site's normal traffic.

:class:`SiteDetector` scores each window with the site bundle's classifier (the
base model fine-tuned on the site's benign windows) and with the novelty
baseline of the window's stream (:mod:`iomt_ids.adaptation.novelty`). A window
alerts when

* it is unlike the site's normal traffic (novelty above the stream's conformal
  threshold) **and** the classifier calls it an attack (``1 - P(Benign) >=
  threshold``): it is named with the classifier's most probable attack class; or
* it is far unlike the site's normal traffic (novelty above ``anomaly_factor``
  times the threshold) while the classifier knows no attack class for it: it is
  named ``ANOMALY``.

Each alert carries ``alert.novelty``, the window's novelty over the threshold.
:func:`load_detector` opens either a plain RUN_DIR or a SITE_DIR.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd

from iomt_ids.adaptation.novelty import NoveltyModel
from iomt_ids.adaptation.site import SiteBundle, is_site_dir, load_site
from iomt_ids.detection.detector import Detector, Verdicts
from iomt_ids.exceptions import ConfigError
from iomt_ids.runtime import usable_cpus

__all__ = ["ANOMALY", "SiteDetector", "load_detector"]

#: Category of a window far from the site's normal traffic that no trained class fits.
ANOMALY = "ANOMALY"
#: Windows per chunk of the novelty search shared by the two threads (small enough to share a
#: 65 536-packet batch's ~7 000 windows, large enough that a chunk's overhead does not show).
NOVELTY_CHUNK = 2048


class SiteDetector(Detector):
    """A :class:`Detector` gated by the site's novelty baselines (see the module docstring)."""

    def __init__(
        self, site: SiteBundle, threshold: float = 0.5, explain: bool = True, eve_strict: bool = False
    ) -> None:
        super().__init__(site.classifier, threshold, explain=explain, eve_strict=eve_strict)
        self.site = site
        self.model_version = site.version
        self.site_adapted = True
        self._index = {w: NoveltyModel.columns_index(self.columns) for w in site.novelty}
        # per stream: end times of the latest novel windows (at most min_novel - 1 kept between batches)
        self._recent: dict[int, np.ndarray] = {w: np.zeros(0) for w in site.novelty}
        #: compute a batch's novelty on a second thread while the classifier scores it, where the
        #: process may use 2 or more CPUs (the verdicts are the same either way)
        self.overlap_novelty: bool = True
        self._side: ThreadPoolExecutor | None = None

    def _side_thread(self) -> ThreadPoolExecutor | None:
        if not self.overlap_novelty or usable_cpus() < 2:
            return None
        if self._side is None:
            self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iomt-novelty")
        return self._side

    def _score_and_judge(
        self, features: pd.DataFrame, window: int, proba: np.ndarray | None, times: np.ndarray
    ) -> Verdicts:
        """Score and judge a batch; the novelty search runs beside the classifier when it may.

        Both release the interpreter lock for their work (the k-d tree search in scipy, the
        compiled trees or torch in the classifier), so on two CPUs a batch takes about the
        longer of the two instead of their sum. The search runs in chunks of
        :data:`NOVELTY_CHUNK` windows, and once the classifier is done this thread takes the
        chunks not started yet: about half the sum when the search is the longer of the two.
        Each window's distance does not depend on the chunking (same values either way).
        """
        side = self._side_thread() if proba is None else None
        if side is None:
            return super()._score_and_judge(features, window, proba, times)
        self.check_windows([window])
        # the search gets its own array: the two threads share no pandas object
        raw = features.to_numpy(dtype=np.float64) if isinstance(features, pd.DataFrame) else features
        starts = range(0, len(raw), NOVELTY_CHUNK)
        parts: list[np.ndarray] = [np.zeros(0)] * len(starts)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(starts)):
            todo.put(i)

        def search() -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                parts[i] = self.novelty(raw[starts[i] : starts[i] + NOVELTY_CHUNK], window)

        pending = side.submit(search)
        try:
            proba = self.score_many(features)
            search()  # the classifier is done: take the chunks the side thread has not started
        finally:
            wait([pending])  # the search never outlives its batch, even when scoring failed
        pending.result()  # the side thread's error, if it had one
        ratio = np.concatenate(parts) if parts else np.zeros(0)
        return self.verdicts(features, window, proba, times, ratio=ratio)

    def reset_state(self) -> None:
        self._recent = {w: np.zeros(0) for w in self.site.novelty}

    def _persistent(self, window: int, novel: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Per window: at least ``min_novel`` novel windows of the stream within ``persist_seconds`` up to it."""
        pol = self.site.policy
        m = pol.min_novel
        t_novel = np.concatenate([self._recent[window], times[novel]])
        # the (m-1)-th novel window before each novel window, by end time
        count_before = np.searchsorted(t_novel, times, side="right")
        ok = np.zeros(len(times), dtype=bool)
        enough = count_before >= m
        idx = np.flatnonzero(enough)
        ok[idx] = times[idx] - t_novel[count_before[idx] - m] <= pol.persist_seconds
        self._recent[window] = t_novel[-(m - 1) :] if m > 1 else np.zeros(0)
        return ok & novel

    def check_windows(self, windows: Sequence[int]) -> None:
        missing = [w for w in windows if w not in self.site.novelty]
        if missing:
            raise ConfigError(
                f"site bundle {self.site.version} has normal-traffic baselines for W = "
                f"{list(self.site.windows)}; cannot score W = {missing}. Use --window with those sizes, or "
                "re-run 'iomt-ids adapt' with these windows."
            )

    def novelty(self, features: pd.DataFrame | np.ndarray, window: int) -> np.ndarray:
        """Novelty over threshold of raw window rows of stream ``window``."""
        self.check_windows([window])
        m = self.site.novelty[window]
        raw = (
            features.to_numpy(dtype=np.float64)
            if isinstance(features, pd.DataFrame)
            else np.asarray(features)
        )
        return m.score(raw[:, self._index[window]]) / m.threshold

    def verdicts(
        self,
        features: pd.DataFrame,
        window: int,
        proba: np.ndarray,
        times: np.ndarray | None = None,
        ratio: np.ndarray | None = None,
    ) -> Verdicts:
        """Verdicts of one stream's windows; ``ratio``: their :meth:`novelty`, when already computed."""
        base = self.classify(proba)
        if ratio is None:
            ratio = self.novelty(features, window)
        novel = ratio > 1.0
        far = ratio > self.site.policy.anomaly_factor
        is_alert = novel & (base.is_alert | far)
        if times is not None and self.site.policy.min_novel > 1:
            is_alert &= self._persistent(window, novel, np.asarray(times, dtype=np.float64))
        category = np.where(base.is_alert, base.category, ANOMALY).astype(object)
        return Verdicts(score=base.score, is_alert=is_alert, category=category, novelty=ratio)

    def alert_metadata(self) -> dict[str, list[str]]:
        meta = super().alert_metadata()
        meta["site"] = [self.site.version]
        return meta

    def explain(self, features: pd.DataFrame, window: int, top: int = 3) -> list[list[str]] | None:
        """The ``top`` features of each window furthest from the site's normal traffic.

        Each entry reads ``"Rate=1523.4 (+9.1 sd from the site's normal)"``: the raw value and its
        deviation from the mean of the site's benign windows of this stream, in their standard
        deviations after the novelty transform (sign·log1p, scale floored).
        """
        from iomt_ids.adaptation.novelty import NOVELTY_COLUMNS

        if not self.explain_alerts or not len(features):
            return None
        m = self.site.novelty[window]
        raw = features.to_numpy(dtype=np.float64)[:, self._index[window]]
        dev = m.deviations(raw)
        order = np.argsort(-np.abs(dev), axis=1)[:, :top]
        return [
            [
                f"{NOVELTY_COLUMNS[j]}={raw[r, j]:.6g} ({dev[r, j]:+.1f} sd from the site's normal)"
                for j in row
            ]
            for r, row in enumerate(order)
        ]

    def describe(self) -> list[str]:
        """What this detector applies, one line each (printed by ``detect``)."""
        lines = [f"site bundle {self.site.version}: classifier {self.bundle.version} "
                 f"({self.site.meta.get('finetune', {}).get('method', '?')})"]  # fmt: skip
        for w, m in sorted(self.site.novelty.items()):
            s = self.site.meta.get("streams", {}).get(str(w), {})
            lines.append(
                f"  W={w}: novelty threshold {m.threshold:.3f} (conformal, α = {m.alpha_bound:.1e} per window "
                f"on traffic like the calibration capture: at most {s.get('false_alarms_per_hour_bound', '?')} "
                f"novel windows/hour at {s.get('windows_per_hour', 0):,.0f} windows/hour)"
            )
        pol = self.site.policy
        lines.append(
            f"  alert = novel AND P(attack) >= {self.threshold:g}; ANOMALY when novelty > "
            f"{pol.anomaly_factor:g}x threshold and no attack class fits; only while the stream has "
            f">= {pol.min_novel} novel windows within {pol.persist_seconds:g} s"
        )
        return lines


def load_detector(
    path: str | Path, threshold: float = 0.5, explain: bool = True, eve_strict: bool = False
) -> Detector:
    """A :class:`SiteDetector` for a SITE_DIR (``site.json``), else a plain :class:`Detector`.

    ``explain`` attaches an explanation to every alert line written (see :meth:`Detector.explain`).
    """
    from iomt_ids.artifacts import load_bundle

    if is_site_dir(path):
        return SiteDetector(load_site(path), threshold, explain=explain, eve_strict=eve_strict)
    return Detector(load_bundle(path), threshold, explain=explain, eve_strict=eve_strict)
