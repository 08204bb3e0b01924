"""Tiny DNS messages for the lab: an A query and an A answer, built with dpkt.

The lab's devices resolve the ward's server names through the lab DNS server
(never through the host's resolver), so their background traffic has real DNS.
"""

from __future__ import annotations

import random
import socket

import dpkt

from iomt_ids.lab.topology import check_lab_target

__all__ = ["WARD_NAMES", "answer", "build_query", "resolve"]

#: The names the lab DNS server knows.
WARD_NAMES: dict[str, str] = {
    "ehr.ward.lab": "10.77.0.1",
    "updates.ward.lab": "10.77.0.1",
    "mqtt.ward.lab": "10.77.0.10",
}


def build_query(name: str, qid: int | None = None) -> bytes:
    """Return the bytes of a recursive A query for ``name``."""
    msg = dpkt.dns.DNS(id=qid if qid is not None else random.randrange(65536), rd=1)
    msg.qd = [dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN)]
    return bytes(msg)


def answer(query: bytes, names: dict[str, str] = WARD_NAMES) -> bytes | None:
    """Return the answer to a DNS query (NXDOMAIN for unknown names), or None if unparsable."""
    try:
        msg = dpkt.dns.DNS(query)
    except (dpkt.UnpackError, IndexError):
        return None
    msg.op = dpkt.dns.DNS_QR | dpkt.dns.DNS_RA | (msg.op & dpkt.dns.DNS_RD)
    msg.an = []
    if msg.qd and msg.qd[0].name in names and msg.qd[0].type == dpkt.dns.DNS_A:
        rr = dpkt.dns.DNS.RR(name=msg.qd[0].name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN, ttl=60)
        rr.ip = socket.inet_aton(names[msg.qd[0].name])
        msg.an = [rr]
        msg.rcode = dpkt.dns.DNS_RCODE_NOERR
    else:
        msg.rcode = dpkt.dns.DNS_RCODE_NXDOMAIN
    return bytes(msg)


def resolve(name: str, server: str, timeout: float = 1.0) -> str | None:
    """Resolve ``name`` with one UDP query to the lab DNS ``server``; None if no answer.

    The answer is only returned if it is a lab address.
    """
    check_lab_target(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(name), (server, 53))
        try:
            data, _ = sock.recvfrom(2048)
        except OSError:
            return None
    msg = dpkt.dns.DNS(data)
    for rr in msg.an:
        if rr.type == dpkt.dns.DNS_A:
            ip = socket.inet_ntoa(rr.ip)
            check_lab_target(ip)
            return ip
    return None
