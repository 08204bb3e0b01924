"""Labels from CICIoMT2024 file names, and the 19 -> 6 -> 2 class maps, kept as data.

The dataset has no label column: ``TCP_IP-DDoS-ICMP3_train.pcap.csv`` holds rows
of class "TCP/IP DDoS ICMP". The name is ``<stem><capture index>_<split>.pcap.csv``;
the stem decides the class, the stem plus the index identifies the capture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from iomt_ids.exceptions import ConfigError, UnknownFileNameError

__all__ = [
    "BENIGN",
    "CLASS19_TO_CLASS6",
    "CLASS6_TO_CLASS2",
    "CLASSES",
    "STEM_TO_CLASS19",
    "TASKS",
    "FileLabel",
    "classes_for_task",
    "map_labels",
    "parse_file_name",
]

#: File-name stem (capture index and split removed) -> 19-class label.
STEM_TO_CLASS19: dict[str, str] = {
    "Benign": "Benign",
    "ARP_Spoofing": "ARP spoofing",
    "MQTT-DDoS-Connect_Flood": "MQTT DDoS connect flood",
    "MQTT-DDoS-Publish_Flood": "MQTT DDoS publish flood",
    "MQTT-DoS-Connect_Flood": "MQTT DoS connect flood",
    "MQTT-DoS-Publish_Flood": "MQTT DoS publish flood",
    "MQTT-Malformed_Data": "MQTT malformed data",
    "Recon-OS_Scan": "Recon OS scan",
    "Recon-Ping_Sweep": "Recon ping sweep",
    "Recon-Port_Scan": "Recon port scan",
    "Recon-VulScan": "Recon vulnerability scan",
    "TCP_IP-DDoS-ICMP": "TCP/IP DDoS ICMP",
    "TCP_IP-DDoS-SYN": "TCP/IP DDoS SYN",
    "TCP_IP-DDoS-TCP": "TCP/IP DDoS TCP",
    "TCP_IP-DDoS-UDP": "TCP/IP DDoS UDP",
    "TCP_IP-DoS-ICMP": "TCP/IP DoS ICMP",
    "TCP_IP-DoS-SYN": "TCP/IP DoS SYN",
    "TCP_IP-DoS-TCP": "TCP/IP DoS TCP",
    "TCP_IP-DoS-UDP": "TCP/IP DoS UDP",
}

#: 19-class label -> 6-class category.
CLASS19_TO_CLASS6: dict[str, str] = {
    "Benign": "Benign",
    "ARP spoofing": "SPOOFING",
    "MQTT DDoS connect flood": "MQTT",
    "MQTT DDoS publish flood": "MQTT",
    "MQTT DoS connect flood": "MQTT",
    "MQTT DoS publish flood": "MQTT",
    "MQTT malformed data": "MQTT",
    "Recon OS scan": "RECON",
    "Recon ping sweep": "RECON",
    "Recon port scan": "RECON",
    "Recon vulnerability scan": "RECON",
    "TCP/IP DDoS ICMP": "DDoS",
    "TCP/IP DDoS SYN": "DDoS",
    "TCP/IP DDoS TCP": "DDoS",
    "TCP/IP DDoS UDP": "DDoS",
    "TCP/IP DoS ICMP": "DoS",
    "TCP/IP DoS SYN": "DoS",
    "TCP/IP DoS TCP": "DoS",
    "TCP/IP DoS UDP": "DoS",
}

#: 6-class category -> 2-class label.
CLASS6_TO_CLASS2: dict[str, str] = {
    "Benign": "Benign",
    "DDoS": "Attack",
    "DoS": "Attack",
    "MQTT": "Attack",
    "RECON": "Attack",
    "SPOOFING": "Attack",
}

TASKS: tuple[int, ...] = (2, 6, 19)

#: The benign class name, the same in every task.
BENIGN = "Benign"

#: The class names of each task, in a fixed order (Benign first).
CLASSES: dict[int, tuple[str, ...]] = {
    19: tuple(STEM_TO_CLASS19.values()),
    6: ("Benign", "DDoS", "DoS", "MQTT", "RECON", "SPOOFING"),
    2: ("Benign", "Attack"),
}

_SUFFIX = ".pcap.csv"
# After the stem: an optional capture index, then optional "_tag" parts (train, test, lab, ...).
_REST = re.compile(r"^(?P<index>\d*)(?P<tags>(?:_[A-Za-z0-9.\-]+)*)$")
# Longest stems first so that no stem is taken for the prefix of a longer one.
_STEMS = sorted(STEM_TO_CLASS19, key=len, reverse=True)


@dataclass(frozen=True)
class FileLabel:
    """What a CICIoMT2024 file name says.

    Attributes
    ----------
    name: the file name.
    stem: the class stem, e.g. ``TCP_IP-DDoS-ICMP``.
    capture: stem plus capture index, e.g. ``TCP_IP-DDoS-ICMP3``; identifies one capture.
    split: the tag after the index (``train``, ``test``, ``lab`` ...), or "" if none.
    label: the 19-class label.
    """

    name: str
    stem: str
    capture: str
    split: str
    label: str


def parse_file_name(path: str | Path) -> FileLabel:
    """Parse a dataset CSV name into its class and capture.

    >>> parse_file_name("TCP_IP-DDoS-ICMP3_train.pcap.csv").label
    'TCP/IP DDoS ICMP'
    >>> parse_file_name("Recon-Ping_Sweep_test.pcap.csv").capture
    'Recon-Ping_Sweep'
    """
    name = Path(path).name
    base = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else None
    if base is not None:
        for stem in _STEMS:
            if base.startswith(stem):
                match = _REST.match(base[len(stem) :])
                if match:
                    tags = match["tags"].lstrip("_")
                    return FileLabel(
                        name=name,
                        stem=stem,
                        capture=stem + match["index"],
                        split=tags.split("_")[-1] if tags else "",
                        label=STEM_TO_CLASS19[stem],
                    )
    raise UnknownFileNameError(
        f"{path}: file name does not map to a CICIoMT2024 class. Expected "
        f"'<stem>[index]_<split>.pcap.csv' with a stem among {sorted(STEM_TO_CLASS19)}, "
        f"e.g. 'TCP_IP-DDoS-ICMP3_train.pcap.csv'."
    )


def classes_for_task(task: int) -> tuple[str, ...]:
    """Return the class names of the 2-, 6- or 19-class task."""
    if task not in CLASSES:
        raise ConfigError(f"task must be one of {list(TASKS)}; got {task!r} instead.")
    return CLASSES[task]


def map_labels(labels19: list[str] | tuple[str, ...], task: int) -> list[str]:
    """Map 19-class labels to the labels of ``task``."""
    classes_for_task(task)
    if task == 19:
        return list(labels19)
    six = [CLASS19_TO_CLASS6[x] for x in labels19]
    return six if task == 6 else [CLASS6_TO_CLASS2[x] for x in six]
