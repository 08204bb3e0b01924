"""Evaluation protocols: which rows are trained on and which are tested on.

* ``shipped``: the dataset's own ``train/`` and ``test/`` folders (comparable with the papers).
* ``capture``: capture-disjoint wherever a class has several capture files
  (e.g. ``TCP_IP-DDoS-ICMP1`` ... ``ICMP8``): for each such class, whole captures go to
  test (about ``test_fraction`` of its rows, at least one capture, never all), the rest to
  train. Classes recorded in one capture only cannot be split by capture; they keep the
  shipped split and the result says so (:attr:`ProtocolSplit.capture_disjoint_classes`).
* ``random``: train and test pooled, then a seeded split stratified by 19-class label
  (for samples such as ``v2/sample`` whose folders were cut at random anyway).

Whatever the protocol, the pipeline then drops duplicates within each split and the
test rows whose features occur in train, and counts them
(:func:`iomt_ids.workflows.train.prepare_splits`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from iomt_ids.data.loader import DatasetSplits, LoadedData
from iomt_ids.exceptions import ConfigError

__all__ = ["PROTOCOLS", "ProtocolSplit", "apply_protocol", "captures_per_class", "pool"]

log = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("shipped", "capture", "random")


@dataclass
class ProtocolSplit:
    """Train/test rows chosen by a protocol, and what the protocol could honour.

    Attributes
    ----------
    splits: the train and test rows.
    protocol: the protocol's name.
    description: one sentence for reports.
    capture_disjoint_classes: classes whose train and test rows come from different captures.
    test_captures: class -> captures held out for test (``capture`` protocol).
    """

    splits: DatasetSplits
    protocol: str
    description: str
    capture_disjoint_classes: tuple[str, ...] = ()
    test_captures: dict[str, list[str]] = field(default_factory=dict)


def pool(splits: DatasetSplits) -> LoadedData:
    """Train and test rows in one :class:`LoadedData` (train first)."""
    return _concat(splits.train, splits.test)


def _concat(a: LoadedData, b: LoadedData) -> LoadedData:
    return LoadedData(
        table=pl.concat([a.table, b.table], how="vertical", rechunk=True),
        labels=np.concatenate([a.labels, b.labels]),
        captures=np.concatenate([a.captures, b.captures]),
        release=a.release,
        files=[*a.files, *b.files],
        rows_per_file={**a.rows_per_file, **b.rows_per_file},
    )


def captures_per_class(data: LoadedData) -> dict[str, list[str]]:
    """19-class label -> sorted capture ids seen in ``data``."""
    out: dict[str, set[str]] = defaultdict(set)
    for label, cap in set(zip(data.labels.tolist(), data.captures.tolist(), strict=True)):
        out[str(label)].add(str(cap))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _capture_split(
    splits: DatasetSplits, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, list[str]], LoadedData]:
    pooled = _concat(splits.train, splits.test)
    n_train = len(splits.train)
    in_test = np.zeros(len(pooled), dtype=bool)
    in_test[n_train:] = True  # shipped split by default (single-capture classes)
    rng = np.random.default_rng(seed)
    disjoint: list[str] = []
    held: dict[str, list[str]] = {}
    for label, caps in captures_per_class(pooled).items():
        if len(caps) < 2:
            continue
        rows = {c: int((pooled.captures == c).sum()) for c in caps}
        order = [caps[i] for i in rng.permutation(len(caps))]
        total, chosen, acc = sum(rows.values()), [], 0
        for cap in order[:-1]:  # never hold out every capture
            chosen.append(cap)
            acc += rows[cap]
            if acc >= test_fraction * total:
                break
        mask = pooled.labels == label
        in_test[mask] = np.isin(pooled.captures[mask], chosen)
        disjoint.append(label)
        held[label] = sorted(chosen)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test), disjoint, held, pooled


def apply_protocol(
    splits: DatasetSplits, protocol: str = "shipped", *, seed: int = 0, test_fraction: float = 0.2
) -> ProtocolSplit:
    """Re-cut ``splits`` according to ``protocol`` (see the module docstring).

    Raises ConfigError for an unknown protocol or a ``test_fraction`` outside (0, 1).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {list(PROTOCOLS)}; got {protocol!r} instead.")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1); got {test_fraction!r} instead.")
    if protocol == "shipped":
        caps_train = captures_per_class(splits.train)
        caps_test = captures_per_class(splits.test)
        disjoint = tuple(
            c for c in caps_test if c in caps_train and not set(caps_test[c]) & set(caps_train[c])
        )
        return ProtocolSplit(
            splits,
            protocol,
            "the dataset's shipped train/ and test/ folders",
            capture_disjoint_classes=disjoint,
        )
    if protocol == "random":
        from sklearn.model_selection import train_test_split

        pooled = _concat(splits.train, splits.test)
        idx = np.arange(len(pooled))
        labels, counts = np.unique(pooled.labels.astype(str), return_counts=True)
        stratify = pooled.labels.astype(str) if counts.min() >= 2 else None
        tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
        new = DatasetSplits(
            pooled.subset(np.sort(tr)), pooled.subset(np.sort(te)), splits.train_dir, splits.test_dir
        )
        desc = f"train+test pooled, stratified random split ({100 * test_fraction:.0f} % test, seed {seed})"
        return ProtocolSplit(new, protocol, desc)
    tr, te, disjoint, held, pooled = _capture_split(splits, seed, test_fraction)
    new = DatasetSplits(pooled.subset(tr), pooled.subset(te), splits.train_dir, splits.test_dir)
    single = sorted(set(captures_per_class(pooled)) - set(disjoint))
    desc = (
        f"capture-disjoint for {len(disjoint)} class(es) with several captures ({', '.join(disjoint) or 'none'}); "
        f"the {len(single)} single-capture class(es) keep the shipped split"
    )
    log.info("capture protocol: %s; held-out captures %s", desc, held)
    return ProtocolSplit(new, protocol, desc, capture_disjoint_classes=tuple(disjoint), test_captures=held)
