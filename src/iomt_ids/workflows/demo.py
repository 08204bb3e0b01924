"""The embedded demo: the whole system on lab traffic that ships with the package.

``iomt-ids demo`` needs no download and no root. It uses the feature rows that the
traffic lab extracted from two independent lab runs (``datasets/lab/run1`` and
``run2``, real packets from real tools in network namespaces; see their README):

1. extract window features from the shipped captures (``captures/``, excerpts of
   lab run 2), the way the sensor does;
2. train the GRU-DNN on run 1 (validation = stratified 20 % of run 1);
3. evaluate on run 2, a separate lab run, and write metrics.json, report.md and
   the figures;
4. run the streaming detector with the new model over the shipped captures and write
   Suricata-EVE-shaped alerts (``alerts.jsonl``) and a summary (``detection.json``);
5. deploy it on a ward it never saw, as a hospital would: on a shipped lab timeline
   (``datasets/timelines``: a calibration capture of the ward's normal traffic, then
   eight attacks with normal traffic going on), score the unadapted model's alerts,
   adapt it with the calibration capture (``iomt-ids adapt``) and score the site
   bundle's alerts against the timeline's ground truth (``timeline.json``):
   false alerts per hour of normal traffic, attacks detected, attributed and named
   (``site/``, ``timeline-score.json``).

The model uses the ``robust`` feature set (no window-size columns), so that it names
a flood a flood in both window streams (W = 10 and W = 100).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from iomt_ids.data.loader import DatasetSplits, load_split
from iomt_ids.exceptions import DatasetNotFoundError
from iomt_ids.workflows.train import RunConfig, train_run

__all__ = ["DemoConfig", "embedded_lab_dir", "run_demo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    task: int = 6
    model: str = "gru_dnn"
    preset: str = "fast"
    epochs: int | None = None
    seed: int = 0
    progress: bool = True
    feature_set: str = "robust"
    timeline: str | None = None


def embedded_lab_dir() -> Path:
    """Folder of the embedded lab feature set (``run1/``, ``run2/``)."""
    root = Path(str(resources.files("iomt_ids") / "datasets" / "lab"))
    if not (root / "run1").is_dir() or not (root / "run2").is_dir():
        raise DatasetNotFoundError(
            f"{root}: the embedded lab feature set (run1/, run2/) is missing from this install."
        )
    return root


def embedded_timelines() -> list[Path]:
    """Folders of the lab timelines shipped with the package (``datasets/timelines/*``)."""
    root = Path(str(resources.files("iomt_ids") / "datasets" / "timelines"))
    return sorted(p for p in root.glob("*") if (p / "timeline.json").is_file())


def _timeline_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.pcap.gz", f"{stem}.pcap"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetNotFoundError(f"{folder}: no {stem}.pcap(.gz) in this timeline folder.")


def deploy_on_timeline(model_dir: Path, timeline: Path, out: Path, progress: bool = False) -> dict[str, Any]:
    """Score a model on a timeline before and after site adaptation with its calibration capture."""
    from iomt_ids.detection import DetectConfig, JsonLinesSink
    from iomt_ids.detection.runner import run_detection
    from iomt_ids.detection.site import load_detector
    from iomt_ids.detection.sources import PcapSource
    from iomt_ids.evaluation.timeline import load_alerts, load_timeline, score_timeline
    from iomt_ids.workflows.adapt import AdaptConfig, adapt_site

    attacks = load_timeline(timeline / "timeline.json")
    pcap = _timeline_file(timeline, "timeline")
    out.mkdir(parents=True, exist_ok=True)
    adapt_site(AdaptConfig(model=model_dir, out=out / "site", benign=(_timeline_file(timeline, "calib"),),
                           progress=progress))  # fmt: skip
    result: dict[str, Any] = {"timeline": timeline.name}
    for name, directory in (("unadapted", model_dir), ("site", out / "site")):
        alerts = out / f"alerts-{name}.jsonl"
        sink = JsonLinesSink(alerts, append=False)
        try:
            summary = run_detection(PcapSource(pcap), load_detector(directory), [sink], DetectConfig())
        finally:
            sink.close()
        score = score_timeline(attacks, load_alerts(alerts)).to_dict()
        result[name] = {"score": score, "detect": summary.to_dict(), "alerts": str(alerts)}
    (out / "timeline-score.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _captures(root: Path) -> list[Path]:
    return sorted(root.glob("captures/*.pcap"))


def _extract_embedded_captures(root: Path, out: Path, progress: bool) -> list[dict[str, Any]]:
    """Extract window features from the captures shipped with the set (the sensor's first step)."""
    from iomt_ids.features import extract_to_csv

    done = []
    for cap in _captures(root):
        window = 100 if cap.name.startswith("TCP_IP-") else 10  # the dataset's window sizes
        target = out / "extracted" / f"{cap.name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        rows, stats = extract_to_csv(cap, target, window=window, release="v2", progress=progress)
        done.append(
            {
                "capture": cap.name,
                "window": window,
                "csv": str(target),
                "rows": rows,
                "packets": stats.packets_read,
            }
        )
    return done


def _detect_on_captures(root: Path, model_dir: Path, out: Path) -> list[dict[str, Any]]:
    """Run the streaming detector with the demo model over each shipped capture; alerts as EVE JSON lines."""
    from iomt_ids.artifacts import load_bundle
    from iomt_ids.detection import DetectConfig, Detector, JsonLinesSink
    from iomt_ids.detection.runner import run_detection
    from iomt_ids.detection.sources import PcapSource

    detector = Detector(load_bundle(model_dir), threshold=0.5)
    alerts_path = out / "alerts.jsonl"
    alerts_path.unlink(missing_ok=True)
    sink = JsonLinesSink(alerts_path)
    results = []
    try:
        for cap in _captures(root):
            summary = run_detection(PcapSource(cap), detector, [sink], DetectConfig(fold_seconds=10.0))
            results.append({"capture": cap.name, **summary.to_dict()})
    finally:
        sink.close()
    return results


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run the demo; returns the test metrics (on the second lab run)."""
    root = embedded_lab_dir()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    extracted = _extract_embedded_captures(root, out, cfg.progress)
    train = load_split(root / "run1", progress=cfg.progress)
    test = load_split(root / "run2", progress=cfg.progress)
    splits = DatasetSplits(train=train, test=test, train_dir=root / "run1", test_dir=root / "run2")
    run = RunConfig(
        data=root, task=cfg.task, model=cfg.model, out=out / "model", preset=cfg.preset,
        epochs=cfg.epochs, seed=cfg.seed, device="cpu", progress=cfg.progress, feature_set=cfg.feature_set,
    )  # fmt: skip
    metrics = train_run(
        run, splits=splits, split_note="train = lab run 1, test = lab run 2 (a separate capture)"
    )
    metrics["extracted"] = extracted
    metrics["detection"] = _detect_on_captures(root, out / "model", out)
    (out / "detection.json").write_text(json.dumps(metrics["detection"], indent=2, default=str))
    timelines = embedded_timelines()
    if cfg.timeline is not None:
        timelines = [t for t in timelines if t.name == cfg.timeline]
        if not timelines:
            raise DatasetNotFoundError(
                f"no shipped timeline {cfg.timeline!r}; shipped: {[t.name for t in embedded_timelines()]}."
            )
    if timelines:
        metrics["deployment"] = deploy_on_timeline(out / "model", timelines[0], out / "deploy", cfg.progress)
    return metrics
