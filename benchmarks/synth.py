"""Generate a SYNTHETIC file set with the CICIoMT2024 schema, for benchmarks only.

Nothing written here is real traffic and nothing here may be reported as real
data. Rows are drawn per class from the real v2 sample rows in
``../shared/data/ciciomt2024/v2/sample`` (bootstrap) and then perturbed, so that
value ranges, the 10/100-packet window structure, ``Rate = inf`` and empty ``Std``
occur as in the real files, while the structural identities of the release hold:
``Tot size == AVG``, ``LLC == IPv``, ``Variance == Std**2``, ``*_count ==
*_flag_number * Number``, ``Tot sum == AVG * Number`` and ``Min <= AVG <= Max``.

Files are named as in the official download (the 51 train and 21 test names of
``official-file-names.txt``) with per-class row counts from seed 000's Table 1
(about 8.77 M rows in all at ``--scale 1``), so labels come from file names.

``--release v1`` writes the 45-column header; its extra columns are derived
approximately (v1 ``Duration`` is the TTL, ``Srate`` = ``Rate``, ``Drate`` ~ 0,
``IAT`` is timestamp-like, ``Variance`` a ratio in [0, 1], ``Magnitue``,
``Radius``, ``Covariance``, ``Weight`` from the window sizes): schema-faithful,
not distribution-faithful.

Usage::

    python benchmarks/synth.py --out /tmp/iomt-synth --release v2 --scale 1.0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl

from iomt_ids.data.labels import STEM_TO_CLASS19, parse_file_name
from iomt_ids.features.schema import V2_COLUMNS, columns_for

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ciciomt2024"
SAMPLE = SHARED / "v2" / "sample"

#: Rows per 19-class label in the full release (train, test): seed 000, Table 1.
TABLE1: dict[str, tuple[int, int]] = {
    "TCP/IP DDoS UDP": (1635956, 362070),
    "TCP/IP DDoS ICMP": (1537476, 349699),
    "TCP/IP DDoS TCP": (804465, 182598),
    "TCP/IP DDoS SYN": (801962, 172397),
    "TCP/IP DoS UDP": (566950, 137553),
    "TCP/IP DoS SYN": (441903, 98595),
    "TCP/IP DoS ICMP": (416292, 98432),
    "TCP/IP DoS TCP": (380384, 82096),
    "Benign": (192732, 37607),
    "MQTT DDoS connect flood": (173036, 41916),
    "Recon port scan": (83981, 22622),
    "MQTT DoS publish flood": (44376, 8505),
    "MQTT DDoS publish flood": (27623, 8416),
    "Recon OS scan": (16832, 3834),
    "ARP spoofing": (16047, 1744),
    "MQTT DoS connect flood": (12773, 3131),
    "MQTT malformed data": (5130, 1747),
    "Recon vulnerability scan": (2173, 1034),
    "Recon ping sweep": (740, 186),
}

_FLAGS = ("fin", "syn", "rst", "psh", "ack", "ece", "cwr")
_COUNTS = {"ack_count": "ack", "syn_count": "syn", "fin_count": "fin", "rst_count": "rst"}


def official_names() -> list[str]:
    """The 72 official file names (51 train, 21 test)."""
    text = (SHARED / "official-file-names.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def sample_rows() -> dict[str, np.ndarray]:
    """Real v2 sample rows per 19-class label (train and test sample files), float64."""
    if not SAMPLE.is_dir():
        sys.exit(f"synth: {SAMPLE} is missing; the generator needs the shared v2 sample statistics.")
    by_label: dict[str, list[np.ndarray]] = defaultdict(list)
    for path in sorted(SAMPLE.glob("*/*.pcap.csv")):
        df = pl.read_csv(path, null_values=[""], schema_overrides={c: pl.Float64 for c in V2_COLUMNS})
        df = df.rename({c: c.strip() for c in df.columns}).select(list(V2_COLUMNS))
        by_label[parse_file_name(path).label].append(df.to_numpy().astype(np.float64))
    return {k: np.concatenate(v) for k, v in by_label.items()}


def perturb(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Jitter continuous columns of bootstrapped v2 rows, then restore the release's identities."""
    x = rows.copy()
    n = len(x)
    col = {c: j for j, c in enumerate(V2_COLUMNS)}

    def jitter(name: str, sigma: float) -> None:
        x[:, col[name]] *= np.exp(rng.normal(0.0, sigma, n))

    jitter("Header_Length", 0.05)
    jitter("Time_To_Live", 0.02)
    jitter("Rate", 0.10)  # inf stays inf
    jitter("IAT", 0.05)
    size = np.exp(rng.normal(0.0, 0.03, n))  # one factor per row keeps Min <= AVG <= Max
    for name in ("Min", "Max", "AVG"):
        x[:, col[name]] *= size
    std = x[:, col["Std"]] * np.exp(rng.normal(0.0, 0.05, n))  # NaN stays NaN (one-packet windows)
    x[:, col["Std"]] = std
    x[:, col["Variance"]] = std**2
    x[:, col["Tot size"]] = x[:, col["AVG"]]
    x[:, col["LLC"]] = x[:, col["IPv"]]
    number = x[:, col["Number"]]
    x[:, col["Tot sum"]] = np.round(x[:, col["AVG"]] * number)
    for count, flag in _COUNTS.items():
        x[:, col[count]] = np.round(x[:, col[f"{flag}_flag_number"]] * number)
    return x


def to_v1(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Approximate 45-column v1 rows from synthetic v2 rows (see the module docstring)."""
    c2 = {c: j for j, c in enumerate(V2_COLUMNS)}
    v1 = columns_for("v1")
    n = len(x)
    out = np.empty((n, len(v1)), dtype=np.float64)
    number = x[:, c2["Number"]]
    std = np.nan_to_num(x[:, c2["Std"]], nan=0.0)
    derived = {
        "Duration": x[:, c2["Time_To_Live"]],
        "Srate": x[:, c2["Rate"]],
        "Drate": np.where(rng.random(n) < 0.01, rng.exponential(5.0, n), 0.0),
        "IAT": 8.3e7 + rng.normal(0.0, 1e4, n),
        "Variance": np.clip(std / (x[:, c2["AVG"]] + 1.0), 0.0, 1.0),
        "Magnitue": np.sqrt(2.0 * x[:, c2["AVG"]]),
        "Radius": np.sqrt(2.0) * std,
        "Covariance": std**2 * rng.uniform(0.0, 1.0, n),
        "Weight": number * np.round(number * rng.uniform(0.3, 1.0, n)),
    }
    for j, name in enumerate(v1):
        out[:, j] = derived[name] if name in derived else x[:, c2[name]]
    out[:, v1.index("Std")] = x[:, c2["Std"]]  # keep empty Std empty
    return out


def plan(scale: float, rows: int | None) -> list[tuple[str, str, int]]:
    """(split, file name, rows) for every official file; class rows spread evenly over its files."""
    names = official_names()
    files_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in names:
        info = parse_file_name(name)
        files_of[(info.label, info.split)].append(name)
    total = sum(a + b for a, b in TABLE1.values())
    if rows is not None:
        scale = rows / total
    out = []
    for (label, split), group in sorted(files_of.items()):
        want = max(1, round(TABLE1[label][0 if split == "train" else 1] * scale))
        base, extra = divmod(want, len(group))
        for i, name in enumerate(sorted(group)):
            out.append((split, name, max(1, base + (i < extra))))
    return out


def generate(
    out: Path, release: str = "v2", scale: float = 1.0, rows: int | None = None, seed: int = 0
) -> dict:
    """Write the synthetic file set under ``out/{train,test}``; return a summary (skips if up to date)."""
    out = Path(out)
    manifest = out / "SYNTHETIC.json"
    spec = {
        "release": release,
        "scale": scale,
        "rows": rows,
        "seed": seed,
        "generator": "benchmarks/synth.py",
    }
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("spec") == spec:
            return old
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    pool = sample_rows()
    assert set(pool) == set(STEM_TO_CLASS19.values())
    cols = columns_for(release)
    n_rows = 0
    for split, name, n in plan(scale, rows):
        label = parse_file_name(name).label
        src = pool[label]
        x = perturb(src[rng.integers(0, len(src), n)], rng)
        if release == "v1":
            x = to_v1(x, rng)
        (out / split).mkdir(parents=True, exist_ok=True)
        pl.DataFrame(x, schema=list(cols), orient="row").fill_nan(None).write_csv(
            out / split / name, null_value=""
        )
        n_rows += n
    size = sum(p.stat().st_size for p in out.glob("*/*.pcap.csv"))
    summary = {
        "spec": spec,
        "note": "SYNTHETIC rows (bootstrapped and perturbed from the real v2 sample); never report as real.",
        "rows": n_rows,
        "bytes": size,
        "files": len(list(out.glob("*/*.pcap.csv"))),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    manifest.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/iomt-synth/v2"))
    ap.add_argument("--release", choices=("v1", "v2"), default="v2")
    ap.add_argument("--scale", type=float, default=1.0, help="share of the full release's 8.77 M rows")
    ap.add_argument("--rows", type=int, default=None, help="total rows (overrides --scale)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(generate(args.out, args.release, args.scale, args.rows, args.seed), indent=2))


if __name__ == "__main__":
    main()
