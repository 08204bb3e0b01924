"""Score -> classify -> alert, kept as three separate steps (as river's anomaly filters do).

* :meth:`Detector.score_many` / :meth:`Detector.score_one`: window feature rows ->
  class probabilities from the model bundle (no state, no threshold).
* :func:`classify`: probabilities -> verdicts. A window is an attack when
  ``1 - P(Benign) >= threshold``; its category is the most probable non-benign class.
* :meth:`Detector.alerts`: verdicts + the windows' flow metadata ->
  :class:`~iomt_ids.detection.alerts.Alert` records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iomt_ids.data.labels import BENIGN
from iomt_ids.detection.alerts import Alert
from iomt_ids.exceptions import BundleError, ConfigError, SchemaError

if TYPE_CHECKING:
    from iomt_ids.artifacts import ModelBundle

__all__ = ["BENIGN", "AlertRows", "Detector", "Verdicts", "classify", "dos_or_ddos"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdicts:
    """The classify step's output for n windows.

    Attributes
    ----------
    score : numpy.ndarray
        float64 (n,), probability of an attack, ``1 - P(Benign)``.
    is_alert : numpy.ndarray
        bool (n,), ``score >= threshold``.
    category : numpy.ndarray
        object (n,), the most probable non-benign class (set for every window,
        alert or not).
    novelty : numpy.ndarray or None
        float64 (n,), a site detector's novelty over its threshold (> 1: unlike the
        site's normal traffic); None for a plain bundle.
    """

    score: np.ndarray
    is_alert: np.ndarray
    category: np.ndarray
    novelty: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be a number in (0, 1]; got {threshold!r} instead.")
    return float(threshold)


def classify(proba: np.ndarray, classes: Sequence[str], threshold: float = 0.5) -> Verdicts:
    """Turn class probabilities into alert verdicts.

    Parameters
    ----------
    proba : numpy.ndarray
        (n, n_classes) probabilities, columns in the order of ``classes``.
    classes : sequence of str
        Class names; one must be ``"Benign"``.
    threshold : float, default 0.5
        Alert when ``1 - P(Benign) >= threshold``; in (0, 1].

    Returns
    -------
    Verdicts

    Examples
    --------
    >>> v = classify(np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]), ["Benign", "DoS", "DDoS"])
    >>> v.is_alert.tolist(), v.category.tolist()
    ([False, True], ['DoS', 'DDoS'])
    """
    threshold = _check_threshold(threshold)
    classes = list(classes)
    if BENIGN not in classes:
        raise BundleError(f"classes must include {BENIGN!r} to tell attacks apart; got {classes}.")
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise SchemaError(f"classify: proba must have shape (n, {len(classes)}); got {p.shape}.")
    b = classes.index(BENIGN)
    score = np.clip(1.0 - p[:, b], 0.0, 1.0)
    others = [i for i in range(len(classes)) if i != b]
    if others:
        best = np.asarray(others)[p[:, others].argmax(axis=1)] if len(p) else np.zeros(0, np.int64)
    else:
        best = np.full(len(p), b)
    category = np.asarray(classes, dtype=object)[best]
    # a tiny tolerance so that float32 rounding does not flip an exact-threshold case
    return Verdicts(score=score, is_alert=score >= threshold - 1e-9, category=category)


def _dos_pairs() -> dict[str, tuple[str, str]]:
    """Class name -> (its single-source name, its many-source name), for every DoS/DDoS pair."""
    from iomt_ids.data.labels import CLASSES

    pairs: dict[str, tuple[str, str]] = {}
    names = {c for task in CLASSES.values() for c in task}
    for c in names:
        if "DDoS" in c and c.replace("DDoS", "DoS") in names:
            pairs[c] = pairs[c.replace("DDoS", "DoS")] = (c.replace("DDoS", "DoS"), c)
    return pairs


_DOS_PAIRS = _dos_pairs()


def dos_or_ddos(category: str, n_sources: int, classes: Sequence[str]) -> str:
    """Name a flood by how many hosts send it: a DoS class with several sources is the DDoS one.

    The datasets define DoS as one attacking host and DDoS as several; a window's
    features cannot tell them apart (they describe the link, not the senders), but
    its packets can: ``n_sources`` counts the hosts sending a substantial share of
    the traffic to the window's target (see ``WindowBatch.meta``). Classes outside a
    DoS/DDoS pair, and pairs the model does not have, are returned as they are.

    >>> dos_or_ddos("TCP/IP DoS UDP", 2, ["TCP/IP DoS UDP", "TCP/IP DDoS UDP"])
    'TCP/IP DDoS UDP'
    >>> dos_or_ddos("DDoS", 1, ["Benign", "DDoS", "DoS"]), dos_or_ddos("RECON", 3, ["RECON"])
    ('DoS', 'RECON')
    """
    pair = _DOS_PAIRS.get(category)
    if pair is None or n_sources < 1 or pair[0] not in classes or pair[1] not in classes:
        return category
    return pair[1] if n_sources >= 2 else pair[0]


class Detector:
    """Scores window feature rows with a model bundle and turns them into alerts.

    Parameters
    ----------
    bundle : ModelBundle
        A loaded model (see :func:`iomt_ids.artifacts.load_bundle`); its classes
        must include ``"Benign"``.
    threshold : float, default 0.5
        Alert when the attack probability ``1 - P(Benign)`` reaches it.
    explain : bool, default True
        Attach to every alert the 3 features that pushed its window most towards the
        attack class (:func:`iomt_ids.explain.explain_rows`; computed for alerting
        windows only).

    Examples
    --------
    >>> det = Detector(load_bundle("runs/dnn-19"), threshold=0.8)  # doctest: +SKIP
    >>> proba = det.score_many(windows.features)  # doctest: +SKIP
    >>> alerts = det.alerts(windows, window=10, proba=proba)  # doctest: +SKIP
    """

    def __init__(
        self, bundle: ModelBundle, threshold: float = 0.5, explain: bool = True, eve_strict: bool = False
    ) -> None:
        self.bundle = bundle
        #: write alerts in Suricata's strict EVE shape (extensions in ``alert.metadata``; no stats lines)
        self.eve_strict = bool(eve_strict)
        #: attach per-alert explanations (see :meth:`explain`)
        self.explain_alerts = bool(explain)
        self.threshold = _check_threshold(threshold)
        self.classes: tuple[str, ...] = tuple(bundle.classes)
        if BENIGN not in self.classes:
            raise BundleError(
                f"model {bundle.version}: classes must include {BENIGN!r} to tell attacks apart; "
                f"got {list(self.classes)}."
            )
        self.columns: tuple[str, ...] = tuple(bundle.input_columns)
        #: written as ``alert.model_version``
        self.model_version: str = bundle.version
        #: True for a detector that knows the site's normal traffic (see ``SiteDetector``)
        self.site_adapted: bool = False

    # -- score ------------------------------------------------------------------------
    def score_many(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) of n window rows (raw values, inf/NaN allowed)."""
        return np.asarray(self.bundle.predict_proba(features, source="window features"), dtype=np.float64)

    def score_one(self, features: Mapping[str, float] | pd.Series | Sequence[float]) -> np.ndarray:
        """Class probabilities (n_classes,) of one window row.

        ``features`` is a mapping (or Series) from column name to value, or a
        sequence in the bundle's column order.
        """
        if isinstance(features, Mapping | pd.Series):
            missing = [c for c in self.columns if c not in features]
            if missing:
                raise SchemaError(f"score_one: window row lacks columns {missing}.")
            row = np.array([[float(features[c]) for c in self.columns]])
        else:
            row = np.asarray(features, dtype=np.float64).reshape(1, -1)
        return self.score_many(row)[0]

    # -- classify ---------------------------------------------------------------------
    def classify(self, proba: np.ndarray) -> Verdicts:
        """See :func:`classify`, with this detector's classes and threshold."""
        return classify(proba, self.classes, self.threshold)

    def verdicts(
        self, features: pd.DataFrame, window: int, proba: np.ndarray, times: np.ndarray | None = None
    ) -> Verdicts:
        """Verdicts of one stream's windows (``times``: their end times, in order); a plain detector
        thresholds the probabilities only."""
        return self.classify(proba)

    def _score_and_judge(
        self, features: pd.DataFrame, window: int, proba: np.ndarray | None, times: np.ndarray
    ) -> Verdicts:
        """:meth:`verdicts` of one stream's windows, scoring them first unless ``proba`` is given."""
        if proba is None:
            proba = self.score_many(features)
        return self.verdicts(features, window, proba, times)

    def reset_state(self) -> None:
        """Forget what earlier windows left behind (a new run starts); a plain detector keeps none."""
        return None

    def check_windows(self, windows: Sequence[int]) -> None:
        """Raise :class:`ConfigError` if this detector cannot score a window stream (plain: any W)."""
        return None

    # -- alert ------------------------------------------------------------------------
    def alert_rows(self, windows: object, window: int, proba: np.ndarray | None = None) -> AlertRows:
        """The alerting windows of a :class:`~iomt_ids.features.windows.WindowBatch`, column-wise.

        Parameters
        ----------
        windows : WindowBatch
            ``features`` and ``meta`` of the windows.
        window : int
            The stream's window size W (written as ``alert.window``).
        proba : numpy.ndarray, optional
            Probabilities already computed by :meth:`score_many`.
        """
        features: pd.DataFrame = windows.features  # type: ignore[attr-defined]
        meta: pd.DataFrame = windows.meta  # type: ignore[attr-defined]
        if not len(features):
            return AlertRows.empty(window, self.bundle.model_name, self.model_version)
        verdicts = self._score_and_judge(features, window, proba, meta["end_ts"].to_numpy())
        idx = np.flatnonzero(verdicts.is_alert)
        m = meta.iloc[idx] if len(idx) < len(meta) else meta

        def col(name: str) -> list[Any]:
            return m[name].to_numpy().tolist()

        category = verdicts.category[idx].tolist()
        if "n_sources" in m:
            category = [
                dos_or_ddos(c, s, self.classes) for c, s in zip(category, col("n_sources"), strict=True)
            ]

        return AlertRows(
            window=int(window),
            model=self.bundle.model_name,
            model_version=self.model_version,
            window_id=col("window_id"),
            start_ts=col("start_ts"),
            end_ts=col("end_ts"),
            n_packets=col("n_packets"),
            src_ip=[str(v) for v in col("src_ip")],
            dest_ip=[str(v) for v in col("dest_ip")],
            src_port=col("src_port"),
            dest_port=col("dest_port"),
            proto=[str(v) for v in col("proto")],
            category=category,
            score=verdicts.score[idx].tolist(),
            novelty=None if verdicts.novelty is None else verdicts.novelty[idx].tolist(),
            n_novel=-1 if verdicts.novelty is None else int((verdicts.novelty > 1.0).sum()),
            metadata=self.alert_metadata(),
            # explained lazily, only for the alert lines that are written (a flood's folded repeats cost nothing)
            explain_rows=features.iloc[idx] if len(idx) < len(features) else features,
            explainer=partial(self.explain, window=int(window)),
            strict=self.eve_strict,
        )

    def alert_metadata(self) -> dict[str, list[str]]:
        """``alert.metadata`` of this detector's alerts, as Suricata writes rule metadata (string lists).

        ``detector: ["ml"]`` marks the alert as a machine-learning verdict (SIEM rule sets ask that
        ML-only alerts say so), then the model, its version and task.
        """
        return {
            "detector": ["ml"],
            "model": [self.bundle.model_name],
            "model_version": [self.model_version],
            "task": [str(self.bundle.task)],
        }

    def explain(self, features: pd.DataFrame, window: int) -> list[list[str]] | None:
        """Per alerting window, the top 3 features behind it: ``"syn_flag_number=0.9 (+0.41)"``.

        Raw value and signed contribution towards the window's attack class versus Benign
        (:func:`iomt_ids.explain.explain_rows`: log-odds for LightGBM and deep models,
        probability for the forest). None when the detector was made with ``explain=False``
        or the model kind has no explanation method.
        """
        if not getattr(self, "explain_alerts", True) or not len(features):
            return None
        from iomt_ids.explain import explain_rows, format_explanation

        try:
            rows = explain_rows(self.bundle, features, top=3)
        except BundleError as exc:  # a model kind without an explanation method
            logger.debug("no explanations: %s", exc)
            return None
        return [format_explanation(items) for items in rows]

    def alerts(self, windows: object, window: int, proba: np.ndarray | None = None) -> list[Alert]:
        """:class:`Alert` records of the alerting windows (see :meth:`alert_rows`)."""
        rows = self.alert_rows(windows, window, proba)
        alerts = [rows.alert(i, defer=True) for i in range(len(rows))]
        rows.explain_pending()
        return alerts


@dataclass
class AlertRows:
    """Alerting windows of one batch as plain Python columns; :meth:`alert` builds one record.

    The detection loop counts most alerts of a flood without writing them, so it
    builds :class:`Alert` objects only for the ones it writes.
    """

    window: int
    model: str
    model_version: str
    window_id: list[int]
    start_ts: list[float]
    end_ts: list[float]
    n_packets: list[int]
    src_ip: list[str]
    dest_ip: list[str]
    src_port: list[int]
    dest_port: list[int]
    proto: list[str]
    category: list[str]
    score: list[float]
    novelty: list[float] | None = None
    #: windows of the batch unlike the site's normal traffic (-1: not a site detector)
    n_novel: int = -1
    #: ``alert.metadata`` shared by the rows (string lists)
    metadata: dict[str, list[str]] | None = None
    #: the alerting windows' feature rows and the detector's ``explain(rows)``, used per written alert
    explain_rows: pd.DataFrame | None = None
    explainer: Callable[[pd.DataFrame], list[list[str]] | None] | None = None
    #: build alerts in Suricata's strict EVE shape
    strict: bool = False
    #: (row, metadata) of alerts built with ``defer=True`` whose explanation is not computed yet
    _pending: list[tuple[int, dict[str, Any]]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def empty(cls, window: int, model: str, model_version: str) -> AlertRows:
        return cls(int(window), model, model_version, *([] for _ in range(11)))  # type: ignore[arg-type]

    def _extra(self, i: int, defer: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.novelty is not None:
            extra["novelty"] = round(float(self.novelty[i]), 4)
        if self.metadata is not None:
            meta = dict(self.metadata)
            if self.explainer is not None and self.explain_rows is not None:
                if defer:
                    self._pending.append((i, meta))
                else:
                    explained = self.explainer(self.explain_rows.iloc[i : i + 1])
                    if explained:
                        meta["explanation"] = list(explained[0])
            extra["metadata"] = meta
        return extra

    def explain_pending(self) -> None:
        """Explain every alert built with ``defer=True`` since the last call, in one explainer call.

        Batching matters: an explainer call has a fixed cost (preprocessing, scoring,
        the model's attribution set-up) that a per-alert call pays once per alert. The
        explanation goes into the alert's ``metadata`` (shared with its folded summary).
        """
        pending, self._pending = self._pending, []
        if not pending or self.explainer is None or self.explain_rows is None:
            return
        explained = self.explainer(self.explain_rows.iloc[[i for i, _ in pending]])
        if explained:
            for (_, meta), items in zip(pending, explained, strict=True):
                meta["explanation"] = list(items)

    def fold_into(self, folder: Any, explain: bool = True) -> list[Alert]:
        """Offer every row to an :class:`~iomt_ids.detection.folding.AlertFolder`; the alerts to write.

        Only the alerts the folder writes are built, and their explanations are computed
        in one batch before they are returned (in the folder's order). With
        ``explain=False`` that is left to the caller: call :meth:`explain_pending` (on
        any thread) before the alerts are written.
        """
        written: list[Alert] = []
        offer = folder.offer
        for i, (src, cat, ts, score, wid) in enumerate(
            zip(self.src_ip, self.category, self.end_ts, self.score, self.window_id, strict=True)
        ):
            out = offer(src, cat, ts, score, wid, partial(self.alert, i, defer=True))
            if out:
                written.extend(out)
        if explain:
            self.explain_pending()
        return written

    def alert(self, i: int, defer: bool = False) -> Alert:
        """The :class:`Alert` of row ``i``.

        With ``defer``, its explanation is left for :meth:`explain_pending` (call it before
        the alert is written).
        """
        return Alert(
            timestamp=self.end_ts[i],
            window_id=self.window_id[i],
            window=self.window,
            category=self.category[i],
            score=self.score[i],
            src_ip=self.src_ip[i],
            dest_ip=self.dest_ip[i],
            src_port=self.src_port[i],
            dest_port=self.dest_port[i],
            proto=self.proto[i],
            model=self.model,
            model_version=self.model_version,
            window_start=self.start_ts[i],
            window_packets=self.n_packets[i],
            extra=self._extra(i, defer),
            strict=self.strict,
        )
