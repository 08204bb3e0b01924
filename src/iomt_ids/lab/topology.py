"""The lab's hosts and addresses, and the check that a target is a lab address.

Everything here is pure (no root, no processes): the addresses of the simulated
hospital network, and :func:`check_lab_target`, the guard every tool argument goes
through before any tool starts. The lab subnet exists only inside the lab's network
namespaces; the host namespace never holds an address or a route in it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from iomt_ids.exceptions import ConfigError

__all__ = [
    "LAB_SUBNET",
    "ROLES",
    "LabHost",
    "Topology",
    "check_lab_target",
    "default_topology",
    "find_ip_literals",
]

#: The only subnet the lab uses. It lives inside the lab namespaces only.
LAB_SUBNET = ipaddress.IPv4Network("10.77.0.0/24")

#: The roles a lab host can have.
ROLES = ("server", "broker", "device", "attacker", "station")

_IPV4_LIKE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\w.])")


def check_lab_target(
    target: str, subnet: ipaddress.IPv4Network = LAB_SUBNET
) -> ipaddress.IPv4Address | ipaddress.IPv4Network:
    """Return ``target`` parsed, or raise if it is not inside the lab subnet.

    A target is an IPv4 host address of the lab (not the network or broadcast
    address) or a network contained in the lab subnet (for sweeps). Host names are
    refused: resolving them could lead anywhere.

    Parameters
    ----------
    target:
        The address or CIDR network a tool will be pointed at.
    subnet:
        The lab subnet; :data:`LAB_SUBNET` by default.

    Returns
    -------
    ipaddress.IPv4Address or ipaddress.IPv4Network

    Raises
    ------
    ConfigError
        If ``target`` is not an IPv4 literal inside ``subnet``.

    Examples
    --------
    >>> check_lab_target("10.77.0.10")
    IPv4Address('10.77.0.10')
    >>> check_lab_target("8.8.8.8")
    Traceback (most recent call last):
    ...
    iomt_ids.exceptions.ConfigError: target '8.8.8.8' is outside the lab subnet 10.77.0.0/24; ...
    """
    text = str(target).strip()
    try:
        if "/" in text:
            net = ipaddress.IPv4Network(text, strict=True)
            if not net.subnet_of(subnet):
                raise ConfigError(
                    f"target {text!r} is outside the lab subnet {subnet}; lab tools may only "
                    f"target networks inside {subnet}."
                )
            return net
        addr = ipaddress.IPv4Address(text)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"target {text!r} is not an IPv4 address or network; lab tools take only IPv4 "
            f"literals inside {subnet} (host names are refused). Got {text!r} instead."
        ) from None
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise ConfigError(
            f"target {text!r} is outside the lab subnet {subnet}; lab tools may only target "
            f"host addresses {subnet[1]}..{subnet[-2]}."
        )
    return addr


def find_ip_literals(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Return every IPv4-looking token inside a command line, for a second check.

    >>> find_ip_literals(["nmap", "-sn", "10.77.0.0/24", "--max-rate=10"])
    ['10.77.0.0/24']
    """
    found: list[str] = []
    for arg in argv:
        found.extend(_IPV4_LIKE.findall(str(arg)))
    return found


@dataclass(frozen=True)
class LabHost:
    """One host of the lab: a network namespace with one interface on the lab bridge.

    Attributes
    ----------
    name: short role name (also part of the namespace and interface names), e.g. ``"pump"``.
    address: its IPv4 address in the lab subnet.
    role: ``"server"``, ``"broker"``, ``"device"``, ``"attacker"`` or ``"station"`` (a nurse-station
        workstation polling the EHR server, used by the seeded ward of :mod:`~iomt_ids.lab.timeline`).
    kind: device kind for devices (``"heart_rate"`` ...), else "".
    """

    name: str
    address: str
    role: str
    kind: str = ""

    def __post_init__(self) -> None:
        check_lab_target(self.address)
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", self.name):
            raise ConfigError(
                f"host name {self.name!r} must be 1-8 lower-case letters/digits starting with a letter."
            )
        if self.role not in ROLES:
            raise ConfigError(
                f"host {self.name!r}: role must be one of {', '.join(ROLES)}; got {self.role!r}."
            )


@dataclass(frozen=True)
class Topology:
    """All the hosts of the lab, joined by one bridge.

    Attributes
    ----------
    hosts: the hosts, in creation order.
    subnet: the lab subnet.
    """

    hosts: tuple[LabHost, ...]
    subnet: ipaddress.IPv4Network = LAB_SUBNET

    def __post_init__(self) -> None:
        names = [h.name for h in self.hosts]
        addrs = [h.address for h in self.hosts]
        if len(set(names)) != len(names) or len(set(addrs)) != len(addrs):
            raise ConfigError(f"topology hosts must have unique names and addresses; got {self.hosts}.")
        for h in self.hosts:
            check_lab_target(h.address, self.subnet)

    def host(self, name: str) -> LabHost:
        """Return the host called ``name``."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(f"no lab host named {name!r}; hosts are {[h.name for h in self.hosts]}.")

    def by_role(self, role: str) -> tuple[LabHost, ...]:
        """Return the hosts of one role, in order."""
        return tuple(h for h in self.hosts if h.role == role)


def default_topology(n_attackers: int = 4) -> Topology:
    """Return the default hospital-ward lab.

    An EHR/DNS server (10.77.0.1), the MQTT broker (10.77.0.10), four medical
    devices (10.77.0.21-24: heart-rate monitor, SpO2 monitor, infusion pump,
    blood-pressure monitor) and ``n_attackers`` attackers (10.77.0.101...).
    """
    if not 1 <= n_attackers <= 8:
        raise ConfigError(f"n_attackers must be between 1 and 8; got {n_attackers!r} instead.")
    hosts = [
        LabHost("server", "10.77.0.1", "server"),
        LabHost("broker", "10.77.0.10", "broker"),
        LabHost("hr", "10.77.0.21", "device", "heart_rate"),
        LabHost("spo2", "10.77.0.22", "device", "spo2"),
        LabHost("pump", "10.77.0.23", "device", "infusion_pump"),
        LabHost("bp", "10.77.0.24", "device", "blood_pressure"),
    ]
    hosts += [LabHost(f"att{i + 1}", f"10.77.0.{101 + i}", "attacker") for i in range(n_attackers)]
    return Topology(tuple(hosts))
