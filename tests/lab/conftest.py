"""Fixtures of the lab tests: the root/tool guard shared by every root test."""

from __future__ import annotations

import os
import shutil

import pytest

#: Commands the root lab tests need, with their Debian packages.
NEEDED = {"ip": "iproute2", "ss": "iproute2", "tcpdump": "tcpdump", "nmap": "nmap", "mosquitto": "mosquitto"}


def lab_skip_reason() -> str | None:
    """Why the root lab tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "traffic lab tests need root (network namespaces)"
    missing = [f"{cmd} (apt package {pkg})" for cmd, pkg in NEEDED.items() if shutil.which(cmd) is None]
    if missing:
        return "traffic lab tools missing: " + ", ".join(missing)
    return None


@pytest.fixture
def needs_lab() -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
