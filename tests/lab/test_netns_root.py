"""Lab namespaces (root): isolation holds, is checked, and teardown always happens."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.netns import Lab, host_isolation_problems, lab_namespaces
from iomt_ids.lab.topology import LAB_SUBNET, default_topology

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("needs_lab")]


def _ip(*args: str) -> list[dict]:
    return json.loads(
        subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout or "[]"
    )


def test_lab_namespaces_reach_nothing_outside(tmp_path) -> None:
    host_links_before = {link["ifname"] for link in _ip("link")}
    with Lab(default_topology(n_attackers=1), tmp_path) as lab:
        assert lab.isolation_problems() == []
        for ns in lab.namespaces.values():
            assert _ip("-n", ns, "route", "show", "default") == [], ns
            for route in _ip("-n", ns, "-4", "route"):
                assert ipaddress.ip_network(route["dst"]).subnet_of(LAB_SUBNET), (ns, route)
        # The host namespace holds no lab interface, address or route.
        assert {link["ifname"] for link in _ip("link")} == host_links_before
        assert host_isolation_problems(LAB_SUBNET, list(lab.namespaces.values())) == []
        for route in _ip("-4", "route", "show", "table", "all"):
            dst = route.get("dst", "default")
            if dst != "default" and "/" in dst:
                assert not ipaddress.ip_network(dst).overlaps(LAB_SUBNET), route
        got = _ip("route", "get", "10.77.0.10")[0]
        assert got.get("dev") in host_links_before and got.get("type") != "local"
        # Inside, the lab works: the server sees the broker's address on its link.
        out = lab.run("server", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert "10.77.0.1/24" in out


def test_isolation_check_catches_a_default_route(tmp_path) -> None:
    with Lab(default_topology(n_attackers=1), tmp_path) as lab:
        subprocess.run(["ip", "-n", lab.ns("hr"), "route", "add", "default", "dev", "eth0"], check=True)
        problems = lab.isolation_problems()
        assert any("default" in p and lab.ns("hr") in p for p in problems), problems


def test_non_lab_target_is_refused_before_the_tool_starts(tmp_path) -> None:
    marker = tmp_path / "tool-ran"
    with Lab(default_topology(n_attackers=1), tmp_path / "logs") as lab:
        for argv, targets in (
            (["sh", "-c", f"touch {marker}; echo 8.8.8.8"], ()),
            (["touch", str(marker)], ("127.0.0.1",)),
            (["touch", str(marker)], ("example.com",)),
        ):
            with pytest.raises(ConfigError, match="target"):
                lab.start("att1", argv, targets=targets)
        assert lab._procs == []
    assert not marker.exists()


def test_teardown_on_exception_leaves_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(default_topology(n_attackers=1), tmp_path) as lab:
            names = set(lab.namespaces.values())
            proc = lab.start("att1", ["sleep", "600"])
            assert names <= set(lab_namespaces())
            raise RuntimeError("boom")
    assert proc.poll() is not None
    assert not names & set(lab_namespaces())
