"""The site bundle: a classifier taught the site's normal traffic plus one novelty baseline per stream.

A site folder (written by ``iomt-ids adapt``) holds::

    site.json        what was adapted, from which captures, the thresholds and their guarantees
    novelty.npz      the baseline windows of each stream (plain arrays, loaded with allow_pickle=False)
    classifier/      a model bundle (the fine-tuned classifier, or the base one where it cannot be tuned)
    adapt-report.md  the adaptation report, with the score distributions (novelty_W*.png)

:func:`load_site` checks the SHA-256 of ``novelty.npz`` recorded in ``site.json``
and that ``classifier/`` is the bundle ``site.json`` names, so a swapped or edited
file is refused with a clear error instead of silently changing what alerts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.adaptation.novelty import NoveltyModel
from iomt_ids.artifacts import ModelBundle, json_default, load_bundle
from iomt_ids.exceptions import BundleError, DataError

__all__ = ["SITE_FORMAT", "SITE_META", "SitePolicy", "SiteBundle", "is_site_dir", "load_site"]

SITE_FORMAT = "iomt-ids-site/1"
SITE_META = "site.json"
_NOVELTY = "novelty.npz"
_CLASSIFIER = "classifier"


@dataclass(frozen=True)
class SitePolicy:
    """How the site detector decides.

    A window alerts when it is unlike the site's normal traffic (novelty above its
    stream's threshold) **and** the classifier calls it an attack (P(attack) >=
    the detect threshold); it is then named with the classifier's most probable
    attack class. A window far outside the site's normal traffic (novelty above
    ``anomaly_factor`` x the threshold) alerts even when the classifier knows no
    attack class for it, as category ``ANOMALY``.

    Persistence: a window alerts only when its stream has seen at least
    ``min_novel`` novel windows (itself included) within the last
    ``persist_seconds``. Scans and floods make many windows a second, so this costs
    them a fraction of a second; a lone odd window of normal traffic stays quiet.
    """

    anomaly_factor: float = 3.0
    min_novel: int = 3
    persist_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.anomaly_factor > 1.0 or self.min_novel < 1 or not self.persist_seconds >= 0:
            raise BundleError(
                f"site policy: anomaly_factor must be > 1, min_novel >= 1, persist_seconds >= 0; got "
                f"{self.anomaly_factor!r}, {self.min_novel!r}, {self.persist_seconds!r}."
            )

    def to_dict(self) -> dict[str, float]:
        return {"anomaly_factor": self.anomaly_factor, "min_novel": self.min_novel,
                "persist_seconds": self.persist_seconds}  # fmt: skip


@dataclass
class SiteBundle:
    """A classifier and the per-stream novelty baselines of one site."""

    classifier: ModelBundle
    novelty: dict[int, NoveltyModel]
    policy: SitePolicy = field(default_factory=SitePolicy)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "site-unsaved"))

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(sorted(self.novelty))

    def save(self, directory: str | Path) -> Path:
        """Write the site folder; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.classifier.save(directory / _CLASSIFIER)
        arrays: dict[str, np.ndarray] = {}
        for w, m in self.novelty.items():
            arrays.update(m.to_arrays(f"w{w}_"))
        np.savez(directory / _NOVELTY, **arrays)
        digest = hashlib.sha256((directory / _NOVELTY).read_bytes()).hexdigest()
        meta = dict(self.meta)
        meta.update(
            {
                "format": SITE_FORMAT,
                "classifier": {"dir": _CLASSIFIER, "version": self.classifier.version},
                "novelty": {"file": _NOVELTY, "sha256": digest, "streams": {str(w): m.to_meta()
                                                                           for w, m in self.novelty.items()}},
                "policy": self.policy.to_dict(),
            }
        )  # fmt: skip
        meta["version"] = (
            "site-" + hashlib.sha256((digest + self.classifier.version).encode()).hexdigest()[:12]
        )
        self.meta = meta
        (directory / SITE_META).write_text(json.dumps(meta, indent=2, default=json_default))
        return directory


def is_site_dir(directory: str | Path) -> bool:
    """True when ``directory`` holds a site bundle (``site.json``)."""
    return (Path(directory) / SITE_META).is_file()


def load_site(directory: str | Path) -> SiteBundle:
    """Load and check a site folder written by :meth:`SiteBundle.save`.

    Raises
    ------
    BundleError
        Missing files, a format or hash mismatch, or a bad stored value (the
        message names the file and field).
    """
    directory = Path(directory)
    meta_path = directory / SITE_META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise BundleError(
            f"{directory}: no {SITE_META}; is this a SITE_DIR written by 'iomt-ids adapt'?"
        ) from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc}).") from None
    if meta.get("format") != SITE_FORMAT:
        raise BundleError(f"{meta_path}: format {meta.get('format')!r} is not {SITE_FORMAT!r}.")
    try:
        nov = meta["novelty"]
        streams = {int(w): s for w, s in nov["streams"].items()}
        want_sha = str(nov["sha256"])
        clf_version = str(meta["classifier"]["version"])
        pol = meta["policy"]
        policy = SitePolicy(anomaly_factor=float(pol["anomaly_factor"]), min_novel=int(pol.get("min_novel", 1)),
                            persist_seconds=float(pol.get("persist_seconds", 0.0)))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{meta_path}: field {exc} is missing or malformed.") from None
    if not streams:
        raise BundleError(f"{meta_path}: no novelty streams recorded.")
    npz = directory / _NOVELTY
    if not npz.is_file():
        raise BundleError(f"{directory}: {_NOVELTY} is missing.")
    sha = hashlib.sha256(npz.read_bytes()).hexdigest()
    if sha != want_sha:
        raise BundleError(
            f"{npz}: SHA-256 {sha[:12]}... does not match {SITE_META} ({want_sha[:12]}...); the file was changed "
            "after 'iomt-ids adapt' wrote it. Re-run adapt."
        )
    classifier = load_bundle(directory / _CLASSIFIER)
    if classifier.version != clf_version:
        raise BundleError(
            f"{directory / _CLASSIFIER}: bundle {classifier.version} is not the classifier {clf_version} that "
            f"{SITE_META} names."
        )
    if classifier.release != "v2":
        raise BundleError(f"{directory}: site bundles need a v2 classifier; got {classifier.release}.")
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    try:
        novelty = {w: NoveltyModel.from_arrays(s, arrays, f"w{w}_") for w, s in streams.items()}
    except DataError as exc:
        raise BundleError(f"{npz}: {exc}") from None
    return SiteBundle(classifier=classifier, novelty=novelty, policy=policy, meta=meta)
