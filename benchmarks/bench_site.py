"""Site adaptation as an operator judges it: false alerts per hour of normal traffic, attacks caught, named.

For every lab timeline (a ward the base models never saw: ``calib.pcap`` = its normal
traffic, ``timeline.pcap`` = normal traffic with attacks run one after another,
``timeline.json`` = when, from whom) and every base model, four detectors are run over
``timeline.pcap`` with the default detect settings (W = 10 and 100, folding 60 s):

* ``unadapted``: the base model as trained (alert when P(attack) >= 0.5);
* ``threshold``: threshold-only calibration: the alert threshold raised to the largest
  P(attack) the base model gives any calibration window (what an operator tries first);
* ``knn``: the naive baseline: a k-NN distance to the calibration windows (log-scaled
  features, threshold at their 99th percentile), alert on distance alone, named with the
  base model's best attack class;
* ``site``: ``iomt-ids adapt`` with the calibration capture (defaults), then ``detect``.

Each run's alerts are scored with :func:`iomt_ids.evaluation.timeline.score_timeline`
(the same arithmetic as ``../shared/tools/score_timeline.py``; grace 10 s). Window-level
figures (share of benign windows flagged, share of attack windows flagged) come from the
same detectors over the windows of both streams.

Base models (trained here unless given): ``cic6`` = 6-class GRU-DNN, preset fast,
``--feature-set robust``, on the REAL CICIoMT2024 v2 sample; ``lab6`` = the same recipe on
lab run 1 (the embedded lab feature set). Data: LAB traffic (the timelines), never
CICIoMT2024, except for the cic6 model's training rows.

Usage::

    python benchmarks/bench_site.py --timelines src/iomt_ids/datasets/timelines/* \\
        --out docs/results/site-adaptation
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, machine

SAMPLE = REPO / ".." / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
GRACE = 10.0
METHODS = ("unadapted", "threshold", "knn", "site")


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.pcap", f"{stem}.pcap.gz"):
        if (folder / name).exists():
            return folder / name
    raise SystemExit(f"{folder}: no {stem}.pcap(.gz)")


def train_bases(work: Path, which: list[str]) -> dict[str, Path]:
    from iomt_ids.data.loader import DatasetSplits, load_split
    from iomt_ids.workflows.demo import embedded_lab_dir
    from iomt_ids.workflows.train import RunConfig, train_run

    out: dict[str, Path] = {}
    for name in which:
        target = work / f"base-{name}"
        if not (target / "bundle.json").exists():
            if name == "cic6":
                if not SAMPLE.is_dir():
                    print(f"skip cic6: {SAMPLE} not found", file=sys.stderr)
                    continue
                train_run(RunConfig(data=SAMPLE, task=6, model="gru_dnn", out=target, preset="fast",
                                    feature_set="robust", device="cpu", progress=False))  # fmt: skip
            elif name == "lab6":
                root = embedded_lab_dir()
                splits = DatasetSplits(load_split(root / "run1"), load_split(root / "run2"), root / "run1",
                                       root / "run2")  # fmt: skip
                train_run(RunConfig(data=root, task=6, model="gru_dnn", out=target, preset="fast",
                                    feature_set="robust", device="cpu", progress=False), splits=splits)  # fmt: skip
        out[name] = target
    return out


def _stream_windows(pcap: Path, windows: tuple[int, ...]) -> dict[int, Any]:
    from iomt_ids.features.packets import read_capture
    from iomt_ids.features.windows import WindowBatch, WindowExtractor

    ex = {w: WindowExtractor(window=w) for w in windows}
    parts: dict[int, list] = {w: [] for w in windows}
    for batch in read_capture(pcap):
        for w, e in ex.items():
            parts[w].append(e.feed(batch.ts, batch.frames, batch.linktype))
    return {w: WindowBatch.concat(p, "v2") for w, p in parts.items()}


def make_detector(method: str, base_dir: Path, calib: Path, work: Path) -> tuple[Any, dict[str, Any]]:
    from iomt_ids.adaptation.novelty import NoveltyModel
    from iomt_ids.adaptation.site import SiteBundle
    from iomt_ids.artifacts import load_bundle
    from iomt_ids.detection import Detector
    from iomt_ids.detection.detector import Verdicts
    from iomt_ids.detection.site import SiteDetector
    from iomt_ids.workflows.adapt import AdaptConfig, adapt_site, benign_windows_from_captures

    base = load_bundle(base_dir)
    if method == "unadapted":
        return Detector(base, 0.5), {}
    if method == "site":
        t0 = time.perf_counter()
        site = adapt_site(AdaptConfig(model=base_dir, out=work / "site", benign=(calib,), progress=False))
        info = {"adapt_seconds": round(time.perf_counter() - t0, 2), "site_version": site.version,
                "streams": site.meta["streams"], "validation_recall": site.meta["validation_recall"],
                "finetune": site.meta["finetune"]}  # fmt: skip
        return SiteDetector(site, 0.5), info
    benign = benign_windows_from_captures([calib], (10, 100))
    if method == "threshold":
        p = np.concatenate(
            [Detector(base).classify(base.predict_proba(benign.rows[w])).score for w in (10, 100)]
        )
        t = float(min(1.0, p.max() + 1e-6))
        return Detector(base, t), {"threshold": t, "calibration_max_p_attack": float(p.max())}
    if method == "knn":
        models = {}
        for w in (10, 100):
            frame = benign.rows[w]
            idx = NoveltyModel.columns_index(list(frame.columns))
            models[w] = NoveltyModel.fit(frame.to_numpy()[:, idx], w, alpha=0.01, k=1, margin=1.0)

        class KnnDetector(SiteDetector):
            """Distance alone decides; the base model only names the alert."""

            def verdicts(self, features: Any, window: int, proba: np.ndarray, times: Any = None) -> Verdicts:
                v = self.classify(proba)
                ratio = self.novelty(features, window)
                return Verdicts(score=v.score, is_alert=ratio > 1.0, category=v.category, novelty=ratio)

        site = SiteBundle(classifier=base, novelty=models, meta={"version": f"knn-{base.version}"})
        return KnnDetector(site, 0.5), {"percentile": 99}
    raise ValueError(method)


def evaluate(det: Any, timeline_dir: Path, out: Path) -> dict[str, Any]:
    from iomt_ids.detection import DetectConfig, JsonLinesSink, run_detection
    from iomt_ids.detection.sources import PcapSource
    from iomt_ids.evaluation.timeline import load_alerts, load_timeline, score_timeline

    pcap = _find(timeline_dir, "timeline")
    attacks = load_timeline(timeline_dir / "timeline.json")
    alerts_path = out / "alerts.jsonl"
    sink = JsonLinesSink(alerts_path, append=False)
    try:
        summary = run_detection(PcapSource(pcap), det, [sink], DetectConfig())
    finally:
        sink.close()
    score = score_timeline(attacks, load_alerts(alerts_path), grace=GRACE)
    res: dict[str, Any] = {"score": score.to_dict(), "detect": summary.to_dict()}
    # window level: flagged share of windows outside / inside the attack intervals
    streams = _stream_windows(pcap, (10, 100))
    benign_n = benign_flag = attack_n = attack_flag = 0
    for w, wb in streams.items():
        if not len(wb):
            continue
        det.reset_state()
        v = det.verdicts(wb.features, w, det.score_many(wb.features), wb.meta["end_ts"].to_numpy())
        t = wb.meta["end_ts"].to_numpy()
        inside = np.zeros(len(t), bool)
        for a in attacks:
            inside |= (t >= a.start - 1) & (t <= a.end + GRACE)
        benign_n += int((~inside).sum())
        benign_flag += int((v.is_alert & ~inside).sum())
        attack_n += int(inside.sum())
        attack_flag += int((v.is_alert & inside).sum())
    res["windows"] = {"benign": benign_n, "benign_flagged": benign_flag,
                      "benign_flagged_share": benign_flag / max(benign_n, 1),
                      "attack": attack_n, "attack_flagged": attack_flag,
                      "attack_flagged_share": attack_flag / max(attack_n, 1)}  # fmt: skip
    return res


def _table(results: list[dict[str, Any]]) -> str:
    head = ("| timeline | base | detector | false alert lines/h | false alerts/h | benign windows flagged | "
            "attack windows flagged | detected | attributed | named | first alert s (max) |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in results:
        s, w = r["score"], r["windows"]
        firsts = [a["first_s"] for a in s["per_attack"] if a["first_s"] is not None]
        n = s["attacks"]
        lines.append(
            f"| {r['timeline']} | {r['base']} | {r['method']} | {s['false_alert_lines_per_hour']:g} | "
            f"{s['false_alerts_per_hour']:g} | {w['benign_flagged']}/{w['benign']} ({w['benign_flagged_share']:.2%}) | "
            f"{w['attack_flagged_share']:.0%} | {s['attacks_detected']}/{n} | {s['attacks_attributed']}/{n} | "
            f"{s['attacks_named']}/{n} | {max(firsts) if firsts else '-'} |"
        )
    return "\n".join(lines)


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['timeline']}\n{r['base']}" for r in results if r["method"] == "site"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.2
    for i, m in enumerate(METHODS):
        rows = [r for r in results if r["method"] == m]
        x = np.arange(len(rows)) + (i - 1.5) * width
        axes[0].bar(x, [max(r["score"]["false_alert_lines_per_hour"], 0.1) for r in rows], width, label=m)
        axes[1].bar(x, [r["score"]["attacks_named"] for r in rows], width, label=m)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("false alert lines per hour (log; 0 drawn as 0.1)")
    axes[1].set_ylabel("attacks named with the right family")
    for ax in axes:
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    axes[1].axhline(7, color="grey", ls=":", lw=1)
    axes[0].axhline(1, color="grey", ls=":", lw=1)
    axes[1].legend(fontsize=8)
    fig.suptitle("Unseen lab wards: base model vs calibration methods (lab traffic)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timelines", nargs="+", type=Path, required=True)
    ap.add_argument("--bases", default="cic6,lab6")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "site-adaptation")
    ap.add_argument("--work", type=Path, default=Path("/tmp/iomt-bench-site"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    info = machine()
    a.work.mkdir(parents=True, exist_ok=True)
    bases = train_bases(a.work, a.bases.split(","))
    results = []
    for tl in a.timelines:
        calib = _find(tl, "calib")
        for bname, bdir in bases.items():
            for method in METHODS:
                work = a.work / tl.name / bname / method
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                det, extra = make_detector(method, bdir, calib, work)
                r = {"timeline": tl.name, "base": bname, "method": method, **evaluate(det, tl, work), **extra}
                s = r["score"]
                print(f"{tl.name} {bname} {method}: FA lines/h {s['false_alert_lines_per_hour']} "
                      f"benign flagged {r['windows']['benign_flagged']}/{r['windows']['benign']} "
                      f"detected {s['attacks_detected']} attributed {s['attacks_attributed']} "
                      f"named {s['attacks_named']}/{s['attacks']} pps {r['detect']['packets_per_s']:.0f}",
                      flush=True)  # fmt: skip
                results.append(r)
    a.out.mkdir(parents=True, exist_ok=True)
    body = {
        "command": "python benchmarks/bench_site.py " + " ".join(sys.argv[1:]),
        "data": "lab timelines (our traffic lab, not CICIoMT2024): "
        + ", ".join(str(t) for t in a.timelines)
        + "; cic6 base trained on the real CICIoMT2024 v2 sample, lab6 on embedded lab run 1",
        "grace_s": GRACE,
        "machine": info,
        "results": results,
    }
    (a.out / "results.json").write_text(json.dumps(body, indent=1, default=str))
    (a.out / "table.md").write_text(_table(results) + "\n")
    _plot(results, a.out / "operator-view.png")
    print(_table(results))


if __name__ == "__main__":
    main()
