"""The target check (pure, no root): only lab addresses pass, before any tool runs."""

from __future__ import annotations

import ipaddress

import pytest

from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.topology import (
    LAB_SUBNET,
    LabHost,
    Topology,
    check_lab_target,
    default_topology,
    find_ip_literals,
)


@pytest.mark.parametrize("target", ["10.77.0.1", "10.77.0.10", "10.77.0.254", " 10.77.0.21 "])
def test_lab_host_addresses_pass(target: str) -> None:
    assert check_lab_target(target) == ipaddress.IPv4Address(target.strip())


@pytest.mark.parametrize("target", ["10.77.0.0/24", "10.77.0.16/28", "10.77.0.21/32"])
def test_lab_networks_pass(target: str) -> None:
    net = check_lab_target(target)
    assert isinstance(net, ipaddress.IPv4Network) and net.subnet_of(LAB_SUBNET)


@pytest.mark.parametrize(
    "target",
    [
        "8.8.8.8",
        "127.0.0.1",
        "0.0.0.0",
        "10.77.1.5",
        "192.0.2.1",
        "255.255.255.255",
        "10.77.0.0",
        "10.77.0.255",
    ],
)
def test_non_lab_addresses_are_refused(target: str) -> None:
    with pytest.raises(ConfigError, match=r"outside the lab subnet 10\.77\.0\.0/24"):
        check_lab_target(target)


@pytest.mark.parametrize("target", ["10.0.0.0/8", "0.0.0.0/0", "10.77.0.0/23"])
def test_wider_networks_are_refused(target: str) -> None:
    with pytest.raises(ConfigError, match="outside the lab subnet"):
        check_lab_target(target)


@pytest.mark.parametrize("target", ["example.com", "localhost", "::1", "10.77.0.300", "", "10.77.0.1/24"])
def test_names_and_junk_are_refused(target: str) -> None:
    with pytest.raises(ConfigError, match="not an IPv4 address or network|outside"):
        check_lab_target(target)


def test_find_ip_literals_sees_every_address_in_argv() -> None:
    argv = ["hping3", "-S", "-c", "10", "8.8.8.8", "--spoof", "127.0.0.1", "-i", "u1000", "x1.2.3.4y"]
    assert find_ip_literals(argv) == ["8.8.8.8", "127.0.0.1"]


def test_default_topology_is_all_lab_and_unique() -> None:
    topo = default_topology()
    assert [h.role for h in topo.hosts].count("attacker") == 4
    assert len({h.address for h in topo.hosts}) == len(topo.hosts)
    assert all(ipaddress.IPv4Address(h.address) in LAB_SUBNET for h in topo.hosts)
    assert topo.host("broker").address == "10.77.0.10"


def test_host_outside_lab_is_refused() -> None:
    with pytest.raises(ConfigError, match="outside the lab subnet"):
        LabHost("evil", "8.8.8.8", "attacker")
    with pytest.raises(ConfigError, match="unique"):
        Topology((LabHost("a", "10.77.0.2", "server"), LabHost("b", "10.77.0.2", "broker")))
