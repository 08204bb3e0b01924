"""Lab captures -> feature CSVs named like the dataset, with the dataset's windows.

:func:`extract_run` reads a lab run's ``manifest.json`` and extracts every
successful scenario's pcap with :func:`iomt_ids.features.extract_to_csv`, using the
window the dataset uses for that class (100 for the TCP/IP DoS/DDoS floods, 10
otherwise), into ``<stem>_lab.pcap.csv``. It writes a ``manifest.json`` next to the
CSVs that adds the rows of each file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from iomt_ids.exceptions import DataError, DatasetNotFoundError
from iomt_ids.lab.runner import MANIFEST_NAME

__all__ = ["extract_run", "window_for"]

logger = logging.getLogger(__name__)


def window_for(stem: str) -> int:
    """The dataset's packet window for a class stem.

    >>> window_for("TCP_IP-DDoS-SYN"), window_for("MQTT-DoS-Connect_Flood")
    (100, 10)
    """
    return 100 if stem.startswith("TCP_IP-") else 10


def _portable(entry: dict) -> dict:
    """Drop this machine's paths from a manifest entry (interpreter, pcap folder)."""
    out = dict(entry)
    out["steps"] = [
        {
            **step,
            "argv": ["python" if a.endswith(("/python", "/python3")) else a for a in step.get("argv", [])],
        }
        for step in entry.get("steps", [])
    ]
    out["capture"] = [Path(a).name if a.endswith(".pcap") else a for a in entry.get("capture", [])]
    return out


def extract_run(run_dir: str | Path, out_dir: str | Path, release: str = "v2") -> list[dict]:
    """Extract every successful scenario of a lab run into ``out_dir``.

    Parameters
    ----------
    run_dir:
        Folder written by ``iomt-ids lab run`` (pcaps + ``manifest.json``).
    out_dir:
        Where ``<stem>_lab.pcap.csv`` files and the extended ``manifest.json`` go.
    release:
        Feature release, ``"v2"`` (39 columns) or ``"v1"``.

    Returns
    -------
    list of dict
        The manifest entries, each with ``csv``, ``window`` and ``rows`` added.

    Raises
    ------
    DatasetNotFoundError
        ``run_dir`` has no ``manifest.json``.
    DataError
        The manifest is not a lab manifest.
    """
    from iomt_ids.features import extract_to_csv

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    manifest_path = run_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise DatasetNotFoundError(
            f"{manifest_path}: no lab manifest; run `iomt-ids lab run --out {run_dir}` first."
        )
    body = json.loads(manifest_path.read_text(encoding="utf-8"))
    if "scenarios" not in body:
        raise DataError(
            f"{manifest_path}: expected a lab manifest with a 'scenarios' list; got keys {list(body)}."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for entry in body["scenarios"]:
        if entry.get("status") != "ok":
            logger.warning("skipping %s: status %s", entry.get("scenario"), entry.get("status"))
            entries.append(entry)
            continue
        window = window_for(entry["scenario"])
        csv = out_dir / (entry["pcap"] + ".csv")
        rows, _ = extract_to_csv(run_dir / entry["pcap"], csv, window=window, release=release)
        entries.append(
            {**_portable(entry), "csv": csv.name, "window": window, "release": release, "rows": rows}
        )
        logger.info("%s: %d rows (W=%d)", csv.name, rows, window)
    body["scenarios"] = entries
    body["config"]["out_dir"] = run_dir.name  # no absolute host paths in shipped manifests
    (out_dir / MANIFEST_NAME).write_text(json.dumps(body, indent=2), encoding="utf-8")
    return entries
