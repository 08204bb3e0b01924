"""Simulated medical devices: MQTT telemetry plus a little DNS, HTTP and HTTPS.

Each device runs as ``python -m iomt_ids.lab.devices --kind KIND ...`` inside its own
namespace. It publishes JSON telemetry to the lab broker at its own rate (a
heart-rate monitor streams ECG snippets several times a second, a blood-pressure
monitor reports every few seconds), and every few seconds resolves the EHR server
through the lab DNS and uploads a summary over HTTP or checks for firmware over
HTTPS. All addresses are checked to be lab addresses.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace

from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.dnsmsg import resolve
from iomt_ids.lab.topology import check_lab_target

__all__ = ["DEVICE_KINDS", "DeviceKind", "run_device"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceKind:
    """How one kind of device behaves.

    Attributes
    ----------
    topic: MQTT topic suffix (``ward/<host>/<topic>``).
    interval: seconds between two telemetry messages.
    qos: MQTT QoS of the telemetry.
    reading: function of (time, rng) -> dict, the telemetry body.
    web_interval: mean seconds between two DNS + HTTP(S) exchanges.
    """

    topic: str
    interval: float
    qos: int
    reading: Callable[[float, random.Random], dict]
    web_interval: float


def _heart_rate(t: float, rng: random.Random) -> dict:
    bpm = 72 + 6 * math.sin(t / 20) + rng.gauss(0, 1.5)
    ecg = [round(math.sin(2 * math.pi * (t + i / 50) * bpm / 60) + rng.gauss(0, 0.05), 3) for i in range(25)]
    return {"bpm": round(bpm, 1), "ecg_mv": ecg}


def _spo2(t: float, rng: random.Random) -> dict:
    return {"spo2": round(97 + rng.gauss(0, 0.6), 1), "pulse": round(74 + rng.gauss(0, 2), 1), "pi": 3.2}


def _pump(t: float, rng: random.Random) -> dict:
    return {"rate_ml_h": 25.0, "infused_ml": round(t * 25 / 3600, 3), "state": "running", "occlusion": False}


def _bp(t: float, rng: random.Random) -> dict:
    return {"sys": round(118 + rng.gauss(0, 4)), "dia": round(78 + rng.gauss(0, 3)), "map": 91}


#: The device kinds of the lab.
DEVICE_KINDS: dict[str, DeviceKind] = {
    "heart_rate": DeviceKind("heart_rate", 0.1, 0, _heart_rate, 8.0),
    "spo2": DeviceKind("spo2", 0.5, 1, _spo2, 10.0),
    "infusion_pump": DeviceKind("pump", 1.0, 1, _pump, 6.0),
    "blood_pressure": DeviceKind("bp", 5.0, 1, _bp, 12.0),
}


def _web_exchange(name: str, server: str, rng: random.Random, body: dict) -> None:
    ip = resolve("ehr.ward.lab", server) or server
    check_lab_target(ip)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        if rng.random() < 0.5:
            req = urllib.request.Request(
                f"http://{ip}/ehr/{name}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Host": "ehr.ward.lab"},
            )
            urllib.request.urlopen(req, timeout=2).read()
        else:
            urllib.request.urlopen(f"https://{ip}/firmware/{name}", timeout=2, context=ctx).read()
    except OSError as exc:
        logger.debug("%s: web exchange failed: %s", name, exc)


def run_device(
    name: str,
    kind: str,
    broker: str,
    server: str,
    seconds: float,
    seed: int = 0,
    interval: float | None = None,
    qos: int | None = None,
    web_interval: float | None = None,
) -> int:
    """Run one device for ``seconds``; return the number of telemetry messages published.

    Parameters
    ----------
    name: the device's host name (client id and topic).
    kind: a key of :data:`DEVICE_KINDS`.
    broker, server: lab addresses of the MQTT broker and of the EHR/DNS server.
    seconds: how long to run.
    seed: seed of the readings' noise and of the web-exchange timing.
    interval: seconds between two telemetry messages; the kind's own interval if None.
    qos: MQTT QoS (0, 1 or 2) of the telemetry; the kind's own QoS if None.
    web_interval: mean seconds between two DNS + HTTP(S) exchanges; the kind's own if None.
    """
    import paho.mqtt.client as mqtt

    if kind not in DEVICE_KINDS:
        raise ConfigError(f"device kind must be one of {sorted(DEVICE_KINDS)}; got {kind!r} instead.")
    if interval is not None and not 0.01 <= interval <= 3600:
        raise ConfigError(f"device interval must be in [0.01, 3600] seconds; got {interval!r} instead.")
    if qos is not None and qos not in (0, 1, 2):
        raise ConfigError(f"device qos must be 0, 1 or 2; got {qos!r} instead.")
    if web_interval is not None and not 0.1 <= web_interval <= 3600:
        raise ConfigError(f"device web_interval must be in [0.1, 3600] s; got {web_interval!r} instead.")
    check_lab_target(broker)
    check_lab_target(server)
    spec = DEVICE_KINDS[kind]
    spec = replace(
        spec,
        interval=spec.interval if interval is None else interval,
        qos=spec.qos if qos is None else qos,
        web_interval=spec.web_interval if web_interval is None else web_interval,
    )
    rng = random.Random(seed)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{kind}")
    client.reconnect_delay_set(1, 4)
    client.connect_async(broker, 1883, keepalive=20)
    client.loop_start()
    sent = 0
    start = time.monotonic()
    next_pub = start + rng.uniform(0, spec.interval)
    next_web = start + rng.uniform(1, spec.web_interval)
    try:
        while (now := time.monotonic()) - start < seconds:
            if now >= next_pub:
                body = {"device": name, "kind": kind, "ts": time.time(), **spec.reading(now - start, rng)}
                if client.is_connected():
                    client.publish(f"ward/{name}/{spec.topic}", json.dumps(body), qos=spec.qos)
                    sent += 1
                next_pub += spec.interval
            if now >= next_web:
                _web_exchange(name, server, rng, {"device": name, "summary": spec.reading(now - start, rng)})
                next_web = time.monotonic() + rng.expovariate(1 / spec.web_interval)
            time.sleep(max(0.0, min(next_pub, next_web) - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


def main(argv: list[str] | None = None) -> None:
    """Entry point run inside a device's namespace."""
    p = argparse.ArgumentParser(description="iomt-ids lab medical device")
    p.add_argument("--name", required=True)
    p.add_argument("--kind", required=True, choices=sorted(DEVICE_KINDS))
    p.add_argument("--broker", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interval", type=float, default=None, help="seconds between messages (kind default)")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=None, help="telemetry QoS (kind default)")
    p.add_argument("--web-interval", type=float, default=None, help="mean s between web exchanges")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run_device(a.name, a.kind, a.broker, a.server, a.seconds, a.seed, a.interval, a.qos, a.web_interval)


if __name__ == "__main__":
    main()
