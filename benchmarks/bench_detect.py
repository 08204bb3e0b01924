"""End-to-end detector throughput: pcap -> windows (W=10 and W=100) -> model -> alerts (JSON lines).

The capture is SYNTHETIC (built here with dpkt, seed fixed): ~1 M Ethernet frames
in segments like the CICIoMT2024 scenarios: benign MQTT/DNS/ARP/ICMP chatter
among 8 hosts, then a TCP SYN flood, a UDP flood and an ICMP flood from single
sources, each with benign background. The model is a real bundle: by default a
19-class DNN trained here for 2 epochs on the real CICIoMT2024 v2 sample rows
(../shared/data/ciciomt2024/v2/sample/train), ``--model-kind lightgbm`` a 19-class
LightGBM trained there with the pipeline's settings (scored through the compiled tree
kernel, or ``--tree-backend native`` for LightGBM's own predict), or ``--model RUN_DIR``.

It times, after a warm-up run on the first 100 k packets:

* ``read``: reading the pcap into batches only;
* ``extract``: reading + both window streams, no model;
* ``end_to_end``: :func:`iomt_ids.detection.run_detection` with the default
  config (W = 10 and 100, folding 60 s) writing alerts to a JSON-lines file.

Usage::

    python benchmarks/bench_detect.py --packets 1000000 --out benchmarks/results/detect-cpu.json
    python benchmarks/bench_detect.py --model-kind lightgbm --out benchmarks/results/detect-cpu-lightgbm.json
    python benchmarks/bench_detect.py --model-kind lightgbm --adapt 200000 --explain both \
        --out benchmarks/results/detect-cpu-lightgbm-site.json

``--adapt N`` measures the deployed set-up: the model is first adapted (``iomt-ids adapt``) to a
benign-only synthetic capture of N packets drawn with seed + 1, so alerts and their explanations
are as rare as on a site's normal traffic, while the floods of the measured capture still alert.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dpkt
import numpy as np
from _common import REPO, RESULTS, machine, peak_rss_mb, write_result

SAMPLE = REPO / ".." / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
T0 = 1_767_225_600.0


def _eth(src: str, dst: str, payload: dpkt.Packet, etype: int = dpkt.ethernet.ETH_TYPE_IP) -> bytes:
    mac = lambda ip: b"\x02\x00" + socket.inet_aton(ip)  # noqa: E731
    frame = bytes(dpkt.ethernet.Ethernet(src=mac(src), dst=mac(dst), type=etype, data=payload))
    return frame + b"\x00" * max(0, 60 - len(frame))


def _ip(src: str, dst: str, p: int, l4: dpkt.Packet) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=p, ttl=64, data=l4)
    ip.len = 20 + len(bytes(l4))
    return ip


def _templates(rng: np.random.Generator) -> dict[str, list[bytes]]:
    hosts = [f"10.0.0.{i}" for i in range(2, 10)]
    broker = "10.0.0.1"
    benign: list[bytes] = []
    for k in range(400):
        h = hosts[k % len(hosts)]
        r = rng.random()
        if r < 0.45:
            l4 = dpkt.tcp.TCP(
                sport=40000 + k % 8, dport=1883, flags=0x18, data=b"m" * int(rng.integers(40, 300))
            )
            benign.append(_eth(h, broker, _ip(h, broker, 6, l4)))
        elif r < 0.8:
            l4 = dpkt.tcp.TCP(sport=1883, dport=40000 + k % 8, flags=0x10)
            benign.append(_eth(broker, h, _ip(broker, h, 6, l4)))
        elif r < 0.9:
            data = b"q" * int(rng.integers(20, 60))
            l4 = dpkt.udp.UDP(sport=50000 + k, dport=53, data=data, ulen=8 + len(data))
            benign.append(_eth(h, broker, _ip(h, broker, 17, l4)))
        elif r < 0.96:
            a = dpkt.arp.ARP(
                sha=b"\x02\x00" + socket.inet_aton(h), spa=socket.inet_aton(h), tha=bytes(6),
                tpa=socket.inet_aton(broker),
            )  # fmt: skip
            benign.append(_eth(h, "255.255.255.255", a, dpkt.ethernet.ETH_TYPE_ARP))
        else:
            icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=k, data=b"x" * 32))
            benign.append(_eth(h, broker, _ip(h, broker, 1, icmp)))
    victim = "10.0.0.5"
    syn = [
        _eth(
            "10.0.0.66", victim, _ip("10.0.0.66", victim, 6, dpkt.tcp.TCP(sport=int(p), dport=80, flags=0x02))
        )
        for p in rng.integers(1024, 65535, 256)
    ]
    udp = [
        _eth("10.0.0.67", victim, _ip("10.0.0.67", victim, 17,
             dpkt.udp.UDP(sport=int(p), dport=5683, data=b"u" * 18, ulen=26)))
        for p in rng.integers(1024, 65535, 256)
    ]  # fmt: skip
    icmp = [
        _eth("10.0.0.68", victim, _ip("10.0.0.68", victim, 1,
             dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=9, seq=k, data=b"f" * 18))))
        for k in range(256)
    ]  # fmt: skip
    return {"benign": benign, "syn": syn, "udp": udp, "icmp": icmp}


def write_capture(path: Path, n_packets: int, seed: int = 0, benign_only: bool = False) -> dict[str, Any]:
    """Write the synthetic capture (floods between benign stretches, or benign chatter alone); returns its composition."""
    rng = np.random.default_rng(seed)
    tpl = _templates(rng)
    # (kind, share of packets, mean gap s): benign chatter is slow, floods are fast
    plan = [("benign", 0.15, 2e-3), ("syn", 0.25, 2e-5), ("benign", 0.10, 2e-3), ("udp", 0.25, 2e-5),
            ("benign", 0.05, 2e-3), ("icmp", 0.15, 2e-5), ("benign", 0.05, 2e-3)]  # fmt: skip
    if benign_only:
        plan = [("benign", 1.0, 2e-3)]
    chunks: list[bytes] = []
    t = T0
    counts: dict[str, int] = {}
    hdr = struct.Struct("<IIII")
    for kind, share, gap in plan:
        n = int(round(share * n_packets))
        counts[kind] = counts.get(kind, 0) + n
        pool = tpl[kind]
        picks = rng.integers(0, len(pool), n)
        ts = t + np.cumsum(rng.exponential(gap, n))
        if kind != "benign":  # floods carry 2 % benign background
            bg = rng.random(n) < 0.02
            bg_pool = tpl["benign"]
            frames = [
                bg_pool[i % len(bg_pool)] if b else pool[i]
                for i, b in zip(picks.tolist(), bg.tolist(), strict=True)
            ]
        else:
            frames = [pool[i] for i in picks.tolist()]
        sec = np.floor(ts).astype(np.int64)
        usec = np.round((ts - sec) * 1e6).astype(np.int64)
        for s, u, f in zip(sec.tolist(), usec.tolist(), frames, strict=True):
            chunks.append(hdr.pack(s, min(u, 999_999), len(f), len(f)))
            chunks.append(f)
        t = float(ts[-1])
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        fh.write(b"".join(chunks))
    return {"packets": sum(counts.values()), "by_kind": counts, "bytes": path.stat().st_size}


def train_sample_bundle(out: Path, epochs: int, kind: str = "dnn") -> Path:
    from iomt_ids.data.loader import find_csv_files, load_csv_files
    from iomt_ids.workflows import fit_bundle

    train = SAMPLE / "train"
    if not train.is_dir():
        sys.exit(f"bench_detect: {train} is missing; pass --model RUN_DIR instead.")
    data = load_csv_files(find_csv_files(train))
    frame = data.table.to_pandas()
    if kind == "dnn":
        bundle, _ = fit_bundle(
            frame, data.labels, task=19, model="dnn", preset="fast", epochs=epochs, device="cpu"
        )
    else:  # a tree: the pipeline's own settings (LIGHTGBM_PARAMS, early stopping on validation)
        bundle, _ = fit_bundle(frame, data.labels, task=19, model=kind, preset="paper", device="cpu")
    return bundle.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument(
        "--model", type=Path, default=None, help="RUN_DIR or SITE_DIR; default: train a DNN on the v2 sample"
    )
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--model-kind", choices=("dnn", "lightgbm", "random_forest"), default="dnn",
                    help="model trained on the sample when --model is not given")  # fmt: skip
    ap.add_argument("--tree-backend", choices=("auto", "compiled", "native"), default="auto",
                    help="scoring backend of a tree model (auto: the compiled kernel)")  # fmt: skip
    ap.add_argument(
        "--target", type=int, default=None, help="packets/s target (default 100 k; 300 k for trees)"
    )
    ap.add_argument(
        "--explain", choices=("on", "off", "both"), default="on",
        help="per-alert explanations as 'iomt-ids detect' (on, the default), without (off), or both runs",
    )  # fmt: skip
    ap.add_argument(
        "--adapt", type=int, default=0, metavar="PACKETS",
        help="first adapt the model to a benign-only synthetic capture of PACKETS packets (seed + 1) with "
        "'iomt-ids adapt', and run the site bundle: the deployed set-up, where alerts are rare",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-threads", type=int, default=1, help="as 'iomt-ids detect' (default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS / "detect-cpu.json")
    args = ap.parse_args()

    import torch

    from iomt_ids.detection import DetectConfig, JsonLinesSink, PcapSource, run_detection
    from iomt_ids.detection.site import load_detector
    from iomt_ids.features.packets import read_capture
    from iomt_ids.features.windows import WindowExtractor

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
        os.environ["IOMT_IDS_THREADS"] = str(args.torch_threads)  # tree models too, as 'iomt-ids detect' does
    tmp = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    pcap = tmp / "synthetic.pcap"
    t0 = time.perf_counter()
    composition = write_capture(pcap, args.packets, args.seed)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_dir = args.model or train_sample_bundle(tmp / "bundle", args.epochs, args.model_kind)
    train_s = time.perf_counter() - t0 if args.model is None else None
    adaptation = None
    if args.adapt:
        benign = tmp / "site-benign.pcap"
        site = tmp / "site"
        adaptation = {"benign_capture": write_capture(benign, args.adapt, args.seed + 1, benign_only=True)}
        cmd = [str(Path(sys.executable).with_name("iomt-ids")), "adapt", "--model", str(model_dir), "--benign", str(benign),
               "--out", str(site), "--threads", str(args.torch_threads or 1), "--quiet"]  # fmt: skip
        if args.model is None:  # trained here from the sample: continued boosting replays its rows
            cmd += ["--replay-data", str(SAMPLE)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        adaptation.update(
            {
                "command": "iomt-ids " + " ".join(cmd[1:]),
                "seed": args.seed + 1,
                "s": round(time.perf_counter() - t0, 1),
            }
        )
        model_dir = site
    detector = load_detector(model_dir, explain=args.explain != "off")  # a SITE_DIR adds the novelty gate
    bundle = detector.bundle
    tree_backend = None
    if callable(getattr(bundle.estimator, "use_backend", None)):
        tree_backend = args.tree_backend
        bundle.estimator.use_backend(tree_backend)
    target = args.target or (300_000 if tree_backend is not None else 100_000)
    load_start = os.getloadavg()

    # warm-up (imports, torch kernels, page cache)
    run_detection(PcapSource(pcap), detector, [], DetectConfig(max_packets=100_000))

    t0 = time.perf_counter()
    n_read = sum(len(b) for b in read_capture(pcap))
    read_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    exs = [WindowExtractor(10), WindowExtractor(100)]
    n_win = 0
    for b in read_capture(pcap):
        for ex in exs:
            n_win += len(ex.feed_batch(b))
    n_win += sum(len(ex.flush()) for ex in exs)
    extract_s = time.perf_counter() - t0

    alerts_path = tmp / "alerts.jsonl"
    sink = JsonLinesSink(alerts_path)
    summary = run_detection(PcapSource(pcap), detector, [sink], DetectConfig())
    sink.close()
    no_explain = None
    if args.explain == "both":  # the same run without per-alert explanations: what the scoring path costs
        detector.explain_alerts = False
        sink = JsonLinesSink(tmp / "alerts-no-explain.jsonl")
        no_explain = run_detection(PcapSource(pcap), detector, [sink], DetectConfig()).to_dict()
        sink.close()
        detector.explain_alerts = True

    # model alone on the windows the run produced
    from iomt_ids.features.extract import extract_file

    rows, _ = extract_file(pcap, window=10, progress=False)
    t0 = time.perf_counter()
    detector.score_many(rows)
    score_s = time.perf_counter() - t0

    result = {
        "benchmark": "detect_end_to_end",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "data": f"SYNTHETIC capture (dpkt-built frames, seed {args.seed}); model trained on the real v2 sample",
        "capture": {**composition, "generate_s": round(gen_s, 2)},
        **({"adaptation": adaptation} if adaptation is not None else {}),
        "model": {
            "version": detector.model_version,
            "site_adapted": detector.site_adapted,
            "name": bundle.model_name,
            "task": bundle.task,
            "release": bundle.release,
            "train_s": None if train_s is None else round(train_s, 1),
            "torch_threads": torch.get_num_threads(),
            "tree_backend": tree_backend,
            "tree_threads": int(os.environ.get("IOMT_IDS_THREADS", "1")) if tree_backend else None,
        },  # fmt: skip
        "config": {
            "windows": [10, 100],
            "threshold": detector.threshold,
            "fold_seconds": 60,
            "batch_size": 65536,
        },
        "read_only": {"packets": n_read, "s": round(read_s, 3), "packets_per_s": round(n_read / read_s)},
        "extract_w10_w100": {
            "windows": n_win,
            "s": round(extract_s, 3),
            "packets_per_s": round(n_read / extract_s),
        },  # fmt: skip
        "score_only_w10": {
            "windows": len(rows),
            "s": round(score_s, 3),
            "windows_per_s": round(len(rows) / score_s),
        },
        "end_to_end": summary.to_dict(),
        "explain_alerts": args.explain != "off",
        **({"end_to_end_no_explain": no_explain} if no_explain is not None else {}),
        "alert_lines": sum(1 for _ in alerts_path.open()),
        "target_packets_per_s": target,
        "meets_target": summary.packets_per_s >= target,
        "meets_target_no_explain": None if no_explain is None else no_explain["packets_per_s"] >= target,
        "load_average_around_end_to_end": [list(load_start), list(os.getloadavg())],
        "peak_rss_mb": peak_rss_mb(),
        "machine": machine("cpu"),
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
