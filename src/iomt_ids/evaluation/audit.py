"""Leak audit: columns that identify the capture or the window size rather than the traffic.

Every finding is measured on the data given (train and test rows pooled, as read):

* **constant** columns (no information; the ``paper`` feature set drops them too);
* **redundant** columns: exact copies of another column (``Tot size`` = ``AVG``,
  ``LLC`` = ``IPv``), ``Variance`` = ``Std``², and ``*_count`` = flag fraction x ``Number``;
* **window size**: ``Number`` is the packets per window (CICIoMT2024 used 100 only for the
  TCP/IP DoS/DDoS floods, 10 for everything else), so it tells that class family apart
  on its own; the table gives the share of each window size per 6-class category;
* **granularity**: in a W-packet window every flag/protocol fraction is a multiple of
  1/W, so a value that is not a multiple of 0.1 reveals W = 100 even with ``Number``
  dropped; reported as the share of W = 100 rows that give themselves away;
* **single-feature probes**: how well one column alone (a depth-4 decision tree,
  3-fold cross-validated balanced accuracy) predicts the window size, the capture
  (within classes recorded in several captures) and the 19-class label;
* **position dependence**: |Spearman ρ| between a column and the row's position in its
  file; a high value means the column is a timestamp or is cumulative (v1 ``IAT``,
  v1 ``Header_Length``), which identifies *when/where* in a capture a row was taken.
  Meaningless when the rows were shuffled (the v2 sample), so it is reported as measured.

Known leaks of the release documented in ``specs/feature-extraction.md`` §6 are listed
beside the measurements.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt_ids.data.labels import CLASS19_TO_CLASS6
from iomt_ids.data.loader import LoadedData, load_dataset
from iomt_ids.data.preprocess import NAN_FILL
from iomt_ids.data.protocols import captures_per_class, pool
from iomt_ids.features.feature_sets import LEAKY, REDUNDANT

__all__ = ["AuditResult", "audit_dataset", "audit_rows", "format_summary"]

log = logging.getLogger(__name__)

_COUNT_TO_FLAG = {
    "ack_count": "ack_flag_number",
    "syn_count": "syn_flag_number",
    "fin_count": "fin_flag_number",
    "rst_count": "rst_flag_number",
}
_FRACTION_COLUMNS = (
    "fin_flag_number", "syn_flag_number", "rst_flag_number", "psh_flag_number", "ack_flag_number",
    "ece_flag_number", "cwr_flag_number", "HTTP", "HTTPS", "DNS", "Telnet", "SMTP", "SSH", "IRC", "TCP",
    "UDP", "DHCP", "ARP", "ICMP", "IGMP", "IPv", "LLC",
)  # fmt: skip

#: Documented leaks per release (specs/feature-extraction.md §6).
DOCUMENTED: dict[str, dict[str, str]] = {
    "v1": {
        "IAT": "timestamp-like: every 20th record holds the absolute capture time",
        "Header_Length": "cumulative from the start of the 10 MB chunk (position, not traffic)",
        "Number": "window size (9.5 vs 5.5/13.5): reveals the TCP/IP DoS/DDoS family",
        "Weight": "encodes the window size (141.55 vs 38.5/244.6)",
        "ack_count": "cumulative; counts FIN packets (mislabelled counter)",
    },
    "v2": {
        "Number": "window size: 100 for TCP/IP DoS/DDoS captures, 10 for the rest",
        "ack_count": "= ack_flag_number x Number (carries the window size)",
        "syn_count": "= syn_flag_number x Number (carries the window size)",
        "fin_count": "= fin_flag_number x Number (carries the window size)",
        "rst_count": "= rst_flag_number x Number (carries the window size)",
        "Tot sum": "= AVG x Number: with AVG it gives the window size back",
        "flag fractions": "steps of 0.01 (W = 100) vs 0.1 (W = 10) reveal the window size",
    },
}


@dataclass
class AuditResult:
    """What the audit measured (see the module docstring for each part)."""

    data: str
    release: str
    rows: int
    constant: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    formulas: dict[str, float] = field(default_factory=dict)
    window_sizes: dict[str, dict[str, float]] = field(default_factory=dict)
    granularity: dict[str, float] = field(default_factory=dict)
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    position_rho: dict[str, float] = field(default_factory=dict)
    multi_capture_classes: dict[str, list[str]] = field(default_factory=dict)
    leaky: list[str] = field(default_factory=list)
    redundant: list[str] = field(default_factory=list)
    documented: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(data: LoadedData) -> np.ndarray:
    x = data.to_numpy().copy()
    x[np.isnan(x)] = NAN_FILL
    finite_max = np.where(np.isfinite(x), x, -np.inf).max(axis=0)
    return np.where(np.isposinf(x), finite_max, np.where(np.isneginf(x), -finite_max, x))


def _probe(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """3-fold balanced accuracy of a depth-4 tree on one column (chance = 1 / classes)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < 3:
        return float("nan")
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    tree = DecisionTreeClassifier(max_depth=4, random_state=seed)
    return float(cross_val_score(tree, x.reshape(-1, 1), y, cv=cv, scoring="balanced_accuracy").mean())


def _file_slices(data: LoadedData) -> list[np.ndarray]:
    """Row indices of each file (rows are stored file after file, in ``data.files`` order)."""
    sizes = [data.rows_per_file.get(Path(f).name, 0) for f in data.files]
    if sum(sizes) != len(data):  # not in file order (e.g. a subset): fall back to captures
        return [np.flatnonzero(data.captures == c) for c in np.unique(data.captures)]
    edges = np.cumsum([0, *sizes])
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _spearman_position(x: np.ndarray, data: LoadedData) -> float:
    """Mean |Spearman ρ| between the value and the row's position in its file, over files."""
    from scipy.stats import spearmanr

    rhos = []
    for idx in _file_slices(data):
        if len(idx) < 20 or np.ptp(x[idx]) == 0:
            continue
        rho = spearmanr(np.arange(len(idx)), x[idx]).statistic
        if np.isfinite(rho):
            rhos.append(abs(float(rho)))
    return float(np.mean(rhos)) if rhos else 0.0


def audit_rows(data: LoadedData, source: str = "", max_probe_rows: int = 20000, seed: int = 0) -> AuditResult:
    """Audit already loaded rows (see the module docstring)."""
    cols = list(data.columns)
    x = _matrix(data)
    res = AuditResult(data=source, release=data.release, rows=len(data))
    res.documented = DOCUMENTED.get(data.release, {})
    res.constant = [c for j, c in enumerate(cols) if np.ptp(x[:, j]) == 0]
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            if np.allclose(x[:, i], x[:, cols.index(b)], rtol=1e-9, atol=1e-9) and a not in res.constant:
                res.duplicates.append((a, b))
    if "Std" in cols and "Variance" in cols:
        std, var = x[:, cols.index("Std")], x[:, cols.index("Variance")]
        res.formulas["Variance = Std^2 (share of rows)"] = float(
            np.isclose(var, std**2, rtol=1e-6, atol=1e-6).mean()
        )
    if "Number" in cols:
        number = x[:, cols.index("Number")]
        if "Tot sum" in cols and "AVG" in cols:
            res.formulas["Tot sum = AVG x Number (share of rows)"] = float(
                np.isclose(
                    x[:, cols.index("Tot sum")], x[:, cols.index("AVG")] * number, rtol=1e-6, atol=1e-6
                ).mean()
            )
        for cnt, flag in _COUNT_TO_FLAG.items():
            if cnt in cols and flag in cols:
                prod = x[:, cols.index(flag)] * number
                res.formulas[f"{cnt} = {flag} x Number (share of rows)"] = float(
                    np.isclose(x[:, cols.index(cnt)], prod, rtol=1e-6, atol=1e-6).mean()
                )
        cat6 = np.asarray([CLASS19_TO_CLASS6[str(v)] for v in data.labels])
        for cat in sorted(set(cat6)):
            sel = number[cat6 == cat]
            values, counts = np.unique(sel, return_counts=True)
            share = counts / counts.sum()
            main = {f"W={w:g}": float(f) for w, f in zip(values, share, strict=True) if f >= 0.01}
            rest = float(share[share < 0.01].sum())
            res.window_sizes[cat] = {**main, **({"other W (short last windows)": rest} if rest else {})}
        big = number >= 100
        frac_idx = [cols.index(c) for c in _FRACTION_COLUMNS if c in cols]
        fr = x[:, frac_idx] * 10
        fine = (np.abs(fr - np.round(fr)) > 1e-6).any(axis=1)
        res.granularity = {
            "W=100 rows revealed by a fraction not on the 0.1 grid": float(fine[big].mean())
            if big.any()
            else 0.0,
            "W<100 rows with such a fraction": float(fine[~big].mean()) if (~big).any() else 0.0,
        }
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(data), size=min(len(data), max_probe_rows), replace=False)
    targets: dict[str, tuple[np.ndarray, np.ndarray]] = {"label (19)": (sub, data.labels[sub].astype(str))}
    if "Number" in cols:
        targets["window size"] = (sub, (x[sub, cols.index("Number")] >= 100).astype(int))
    res.multi_capture_classes = {k: v for k, v in captures_per_class(data).items() if len(v) > 1}
    per_class: list[tuple[np.ndarray, np.ndarray]] = []
    for label in res.multi_capture_classes:
        rows = np.flatnonzero(data.labels.astype(str) == label)
        rows = rng.choice(rows, size=min(len(rows), max_probe_rows), replace=False)
        per_class.append((rows, data.captures[rows].astype(str)))
    for j, c in enumerate(cols):
        if c in res.constant:
            continue
        res.probes[c] = {name: _probe(x[idx, j], y, seed) for name, (idx, y) in targets.items()}
        if per_class:  # mean over classes of the balanced accuracy of telling its captures apart
            res.probes[c]["capture (within class)"] = float(
                np.nanmean([_probe(x[i, j], y, seed) for i, y in per_class])
            )
        res.position_rho[c] = _spearman_position(x[:, j], data)
    res.leaky = [c for c in LEAKY.get(data.release, ()) if c in cols]
    res.redundant = [c for c in REDUNDANT.get(data.release, ()) if c in cols]
    return res


def audit_dataset(data: str | Path, out: str | Path | None = None) -> AuditResult:
    """Audit the dataset folder ``data`` (train and test pooled); write ``audit.md/json`` to ``out``."""
    res = audit_rows(pool(load_dataset(data)), source=str(data))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.json").write_text(json.dumps(res.as_dict(), indent=2))
        (out / "audit.md").write_text(format_markdown(res))
    return res


def format_summary(res: AuditResult) -> str:
    """A few lines for the terminal."""
    lines = [f"audit of {res.data} ({res.release}, {res.rows} rows)"]
    lines.append(f"constant: {', '.join(res.constant) or 'none'}")
    lines.append(f"identical columns: {', '.join(f'{a} = {b}' for a, b in res.duplicates) or 'none'}")
    for k, v in res.formulas.items():
        lines.append(f"{k}: {100 * v:.1f} %")
    for cat, sizes in res.window_sizes.items():
        lines.append(f"window size in {cat}: " + ", ".join(f"{w} {100 * s:.1f} %" for w, s in sizes.items()))
    for k, v in res.granularity.items():
        lines.append(f"{k}: {100 * v:.1f} %")
    strong = sorted(
        ((c, p.get("window size", float("nan"))) for c, p in res.probes.items()),
        key=lambda t: -np.nan_to_num(t[1]),
    )[:6]
    if strong and np.isfinite(strong[0][1]):
        lines.append(
            "columns that alone tell W = 100 from W < 100 (balanced accuracy, chance 0.5): "
            + ", ".join(f"{c} {v:.2f}" for c, v in strong)
        )
    caps = sorted(
        ((c, p["capture (within class)"]) for c, p in res.probes.items() if "capture (within class)" in p),
        key=lambda t: -np.nan_to_num(t[1]),
    )[:4]
    if caps:
        lines.append(
            "columns that best tell apart the captures of one class (chance 0.5 for two): "
            + ", ".join(f"{c} {v:.2f}" for c, v in caps)
        )
    pos = [(c, r) for c, r in res.position_rho.items() if r > 0.5]
    lines.append(
        "position-dependent (|Spearman ρ| > 0.5 with row order): "
        + (", ".join(f"{c} {r:.2f}" for c, r in pos) or "none measured")
    )
    lines.append(f"feature set 'robust' drops: {', '.join(res.leaky + res.redundant)}")
    return "\n".join(lines)


def format_markdown(res: AuditResult) -> str:
    """The full report as Markdown."""
    lines = [
        f"# Leak audit: `{res.data}`",
        "",
        f"Release {res.release}, {res.rows} rows (train and test pooled, as read).",
        "",
        "## Summary",
        "",
        "```",
        format_summary(res),
        "```",
        "",
        "## Documented leaks of this release (specs/feature-extraction.md §6)",
        "",
        "| column | why |",
        "|---|---|",
    ]
    lines += [f"| {c} | {why} |" for c, why in res.documented.items()]
    lines += [
        "",
        "## Single-column probes",
        "",
        "Balanced accuracy of a depth-4 tree on that column alone (3-fold CV); chance is 1/classes "
        "(0.5 for W and for the captures of a class recorded twice). 'capture' = telling apart the captures "
        "of one class, averaged over the classes recorded in several captures "
        f"({', '.join(res.multi_capture_classes) or 'none here'}). "
        "'position ρ' = mean |Spearman ρ| with the row's position in its file.",
        "",
        "| column | W = 100 vs less | capture (within class) | label (19) | position ρ | in robust set |",
        "|---|---|---|---|---|---|",
    ]
    dropped = set(res.leaky) | set(res.redundant)

    def cell(v: float | None) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.2f}"

    for c, p in res.probes.items():
        lines.append(
            f"| {c} | {cell(p.get('window size'))} | {cell(p.get('capture (within class)'))} | "
            f"{cell(p.get('label (19)'))} | {res.position_rho.get(c, 0):.2f} | {'no' if c in dropped else 'yes'} |"
        )
    lines.append("")
    return "\n".join(lines)
