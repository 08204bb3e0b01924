"""Benchmark: packets/s of the v2 extractor from a pcap, against a plain dpkt loop.

Generates a synthetic pcap of mixed traffic (TCP with and without options,
padded SYN/ACK floods, UDP DNS/DHCP/MQTT-sized, ICMP, ARP, some IPv6 that must be
skipped, full-size frames), times ``extract_file`` on it (single process, one
core), times the straightforward dpkt loop (``iomt_ids.features.reference``) on
the first ``--ref-packets`` packets and extrapolates, checks both give the same
rows on that subset, and prints/writes JSON.

    python benchmarks/bench_extract.py --packets 5000000 --workdir /tmp/iomt-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _templates() -> list[bytes]:
    import dpkt

    def eth(payload: bytes, etype: int = 0x0800) -> bytes:
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=payload))

    def ip(p: int, l4: bytes, src: int, dst: int, ttl: int = 64) -> bytes:
        return bytes(
            dpkt.ip.IP(src=src.to_bytes(4, "big"), dst=dst.to_bytes(4, "big"), p=p, ttl=ttl, data=l4)
        )

    def tcp(sport: int, dport: int, flags: int, opts: bytes = b"", data: bytes = b"") -> bytes:
        t = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, opts=opts, data=data)
        t.off = (20 + len(opts)) // 4
        return bytes(t)

    def udp(sport: int, dport: int, data: bytes) -> bytes:
        return bytes(dpkt.udp.UDP(sport=sport, dport=dport, data=data, ulen=8 + len(data)))

    a, b = 0xC0A80001, 0xC0A80002
    ts_opt = b"\x01\x01\x08\x0a" + b"\x00" * 8
    out = [
        eth(ip(6, tcp(40000, 80, 0x02), a, b)),  # SYN 54
        eth(ip(6, tcp(40001, 443, 0x10), a, b)) + b"\x00" * 6,  # padded ACK 60
        eth(ip(6, tcp(1883, 40002, 0x18, ts_opt, b"x" * 40), b, a, 63)),  # MQTT-ish, options
        eth(ip(6, tcp(40003, 22, 0x18, b"", b"y" * 1460), a, b)),  # 1514
        eth(ip(17, udp(5353, 53, b"q" * 30), a, b)),  # DNS
        eth(ip(17, udp(68, 67, b"d" * 240), 0, 0xFFFFFFFF, 128)),  # DHCP
        eth(ip(1, b"\x08\x00\x00\x00" + b"p" * 36, a, b)),  # ICMP echo
        eth(ip(2, b"\x16\x00\x00\x00" + b"\xe0\x00\x00\xfb", a, 0xE00000FB, 1)) + b"\x00" * 14,  # IGMP
        eth(bytes(dpkt.arp.ARP(spa=a.to_bytes(4, "big"), tpa=b.to_bytes(4, "big"))), 0x0806),  # ARP 42
        eth(b"\x60" + b"\x00" * 39 + b"z" * 20, 0x86DD),  # IPv6, skipped
    ]
    return out


def write_pcap(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` mixed packets to ``path``; return its size in bytes."""
    rng = np.random.default_rng(seed)
    tmpl = _templates()
    weights = np.array([30, 20, 15, 5, 8, 2, 8, 2, 8, 2], dtype=np.float64)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        t = 1_700_000_000.0
        step = 1_000_000
        for start in range(0, n, step):
            m = min(step, n - start)
            kinds = rng.choice(len(tmpl), size=m, p=weights / weights.sum())
            gaps = rng.exponential(20e-6, size=m)
            ts = t + np.cumsum(gaps)
            t = float(ts[-1])
            sec = np.floor(ts).astype(np.int64)
            usec = np.minimum(((ts - sec) * 1e6).astype(np.int64), 999_999)
            lens = np.array([len(x) for x in tmpl], dtype=np.int64)[kinds]
            hdr = np.stack([sec, usec, lens, lens], axis=1).astype("<u4").tobytes()
            parts = []
            for i, k in enumerate(kinds.tolist()):
                parts.append(hdr[16 * i : 16 * i + 16])
                parts.append(tmpl[k])
            fh.write(b"".join(parts))
    return path.stat().st_size


def write_flood(path: Path, n: int) -> int:
    """Write a SYN flood: ``n`` identical 54-byte frames, 10 µs apart (the DoS/DDoS case)."""
    frame = np.frombuffer(_templates()[0], dtype=np.uint8)
    rec = np.empty((n, 16 + len(frame)), dtype=np.uint8)
    us = 1_700_000_000 * 1_000_000 + 10 * np.arange(n, dtype=np.int64)
    hdr = np.stack([us // 1_000_000, us % 1_000_000, np.full(n, len(frame)), np.full(n, len(frame))], axis=1)
    rec[:, :16] = hdr.astype("<u4").view(np.uint8).reshape(n, 16)
    rec[:, 16:] = frame
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        fh.write(rec.tobytes())
    return path.stat().st_size


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: per address space, so a fresh
    one after exec, unlike ru_maxrss which Linux carries over from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _busy_processes() -> list[str]:
    """Command names of other processes using CPU right now (what shares the cores)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    rows = [line.split(None, 1) for line in out.splitlines()]
    return [f"{name.strip()} {cpu}%" for cpu, name in rows[:6] if float(cpu) >= 5.0]


def _csv_only(args: argparse.Namespace) -> None:
    """Child process: stream the pcap to a CSV, print time and peak RSS as JSON."""
    from iomt_ids.features import extract_to_csv

    pcap = args.workdir / f"bench-{args.packets}-s{args.seed}.pcap"
    out = args.workdir / "bench-features.csv"
    c0, t0 = time.process_time(), time.perf_counter()
    rows, stats = extract_to_csv(pcap, out, window=args.window)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "rows": rows,
        "csv_bytes": out.stat().st_size,
        "seconds_wall": round(wall, 3),
        "seconds_cpu": round(cpu, 3),
        "pkts_per_s_cpu": round(stats.packets_read / cpu),
        "peak_rss_mib": _peak_rss_mib(),
    }
    out.unlink()
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument(
        "--ref-packets", type=int, default=100_000, help="packets for the dpkt loop (extrapolated)"
    )
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/iomt-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "extract-cpu.json")
    ap.add_argument("--flood-packets", type=int, default=2_000_000, help="SYN-flood case, W=100 (0: skip)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--csv-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:
        args.workdir.mkdir(parents=True, exist_ok=True)
        write_pcap(args.workdir / f"bench-{args.packets}-s{args.seed}.pcap", args.packets, args.seed)
        return
    if args.csv_only:
        _csv_only(args)
        return

    import dpkt
    import pandas as pd

    import iomt_ids
    from iomt_ids.features import extract_file
    from iomt_ids.features.reference import reference_v2_rows

    args.workdir.mkdir(parents=True, exist_ok=True)
    pcap = args.workdir / f"bench-{args.packets}-s{args.seed}.pcap"
    if not pcap.exists():
        # in a child process, so that its memory does not count in our peak RSS
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--generate-only", "--packets", str(args.packets)]
        subprocess.run([*cmd, "--seed", str(args.seed), "--workdir", str(args.workdir)], check=True)
        print(f"wrote {pcap} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    size = pcap.stat().st_size

    load_before = os.getloadavg()
    busy = _busy_processes()
    # warm-up (page cache, imports), then timed runs; CPU time is what one core spent,
    # wall time also counts waiting for the CPU when other processes share the machine
    extract_file(pcap, window=args.window, progress=False)
    times, cpu_times = [], []
    for _ in range(args.repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        frame, stats = extract_file(pcap, window=args.window, progress=False)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    best, best_cpu = min(times), min(cpu_times)
    rss_extract = _peak_rss_mib()
    # streaming to CSV, in a child process so that its peak RSS is its own
    cmd = [sys.executable, __file__, "--csv-only", "--packets", str(args.packets), "--seed", str(args.seed)]
    done = subprocess.run(
        [*cmd, "--workdir", str(args.workdir), "--window", str(args.window)],
        check=True,
        capture_output=True,
        text=True,
    )
    csv_run = json.loads(done.stdout)

    flood: dict[str, object] = {}
    if args.flood_packets:
        fpath = args.workdir / f"flood-{args.flood_packets}.pcap"
        if not fpath.exists():
            write_flood(fpath, args.flood_packets)
        extract_file(fpath, window=100, progress=False)
        ftimes, fcpu = [], []
        for _ in range(args.repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            fframe, fstats = extract_file(fpath, window=100, progress=False)
            ftimes.append(time.perf_counter() - t0)
            fcpu.append(time.process_time() - c0)
        flood = {
            "data": "synthetic SYN flood, identical 54-byte frames 10 us apart",
            "window": 100,
            "packets": fstats.packets_read,
            "windows": len(fframe),
            "seconds_wall": round(min(ftimes), 3),
            "seconds_cpu": round(min(fcpu), 3),
            "pkts_per_s_wall": round(fstats.packets_read / min(ftimes)),
            "pkts_per_s_cpu": round(fstats.packets_read / min(fcpu)),
        }

    # the plain dpkt loop on a subset, and parity on that subset
    n_ref = min(args.ref_packets, args.packets)
    c0, t0 = time.process_time(), time.perf_counter()
    ref = reference_v2_rows(pcap, window=args.window, limit=n_ref)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    sub = pcap.with_suffix(f".first{n_ref}.pcap")
    with open(pcap, "rb") as src, open(sub, "wb") as dst:
        w = dpkt.pcap.Writer(dst, snaplen=262144)
        for i, (ts, buf) in enumerate(dpkt.pcap.Reader(src)):
            if i >= n_ref:
                break
            w.writepkt(buf, ts=ts)
    ours, _ = extract_file(sub, window=args.window, progress=False)
    same = ours.shape == ref.shape and bool(
        np.allclose(ours.to_numpy(), ref, rtol=1e-12, atol=0, equal_nan=True)
    )
    exact = ours.shape == ref.shape and bool(np.array_equal(ours.to_numpy(), ref, equal_nan=True))

    load = os.getloadavg()
    result = {
        "benchmark": "extract_file v2 from a classic pcap, single process",
        "data": f"synthetic mixed traffic, seed {args.seed} (10 frame templates, 2% IPv6 skipped)",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load],
            "other_busy_processes_before": busy,
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "dpkt": dpkt.__version__,
            "iomt_ids": iomt_ids.__version__,
        },
        "window": args.window,
        "packets": stats.packets_read,
        "accepted": stats.packets_accepted,
        "windows": len(frame),
        "file_bytes": size,
        "seconds_wall": round(best, 3),
        "seconds_cpu": round(best_cpu, 3),
        "seconds_wall_all_runs": [round(t, 3) for t in times],
        "pkts_per_s_wall": round(stats.packets_read / best),
        "pkts_per_s_cpu": round(stats.packets_read / best_cpu),
        "mb_per_s_wall": round(size / best / 1e6, 1),
        "peak_rss_mib": round(rss_extract, 1),
        "peak_rss_note": "extract_file returns every row as one DataFrame (O(windows)); to_csv_streaming is O(batch)",
        "to_csv_streaming": csv_run,
        "syn_flood_w100": flood,
        "dpkt_loop": {
            "packets": n_ref,
            "seconds_wall": round(t_ref, 3),
            "pkts_per_s_wall": round(n_ref / t_ref),
            "seconds_cpu": round(c_ref, 3),
            "pkts_per_s_cpu": round(n_ref / c_ref),
            "extrapolated_seconds_cpu_all_packets": round(args.packets / (n_ref / c_ref), 1),
            "note": "plain dpkt parse + per-window Python aggregation, run on the first packets only and extrapolated",
        },
        "speedup_vs_dpkt_loop_cpu": round((stats.packets_read / best_cpu) / (n_ref / c_ref), 1),
        "parity_on_subset": {"rows": int(len(ref)), "allclose_rtol_1e-12": same, "bitwise_equal": exact},
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
