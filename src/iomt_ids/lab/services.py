"""The lab's servers: the ward's EHR/DNS server and the MQTT broker's configuration.

The EHR server (run as ``python -m iomt_ids.lab.services --bind ADDR ...`` inside
its namespace) answers DNS on UDP 53, HTTP on 80 and HTTPS on 443, and subscribes
to all device telemetry on the broker, like a nurse-station dashboard. The broker
is Debian's ``mosquitto``, started with the configuration written by
:func:`write_mosquitto_conf`.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from iomt_ids.exceptions import CaptureError
from iomt_ids.lab.dnsmsg import answer
from iomt_ids.lab.topology import check_lab_target

__all__ = ["make_certificate", "serve", "write_mosquitto_conf"]

logger = logging.getLogger(__name__)


def write_mosquitto_conf(path: str | Path, bind: str, port: int = 1883) -> Path:
    """Write a mosquitto configuration listening only on the lab address ``bind``."""
    check_lab_target(bind)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"listener {port} {bind}\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_connections -1\n"
        "log_dest stdout\n"
        "log_type error\n"
        "log_type warning\n"
        "connection_messages false\n",
        encoding="utf-8",
    )
    return path


def make_certificate(folder: str | Path) -> tuple[Path, Path] | None:
    """Make a throw-away self-signed certificate with ``openssl``; None if openssl fails."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "ehr.crt", folder / "ehr.key"
    out = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ehr.ward.lab",
        ]
        + ["-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        logger.warning("openssl failed, HTTPS disabled: %s", out.stderr.decode(errors="replace")[-200:])
        return None
    return cert, key


class _EhrHandler(BaseHTTPRequestHandler):
    server_version = "WardEHR/1.0"

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._reply({"path": self.path, "firmware": "2.4.1", "time": time.time()})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length", "0") or 0)
        self.rfile.read(min(length, 65536))
        self._reply({"stored": True})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return


def _dns_loop(bind: str, stop: threading.Event, names: dict[str, str] | None = None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 53))
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                continue
            reply = answer(data) if names is None else answer(data, names)
            if reply is not None:
                sock.sendto(reply, peer)


def _dashboard(broker: str, stop: threading.Event) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="nurse-station")
    client.on_connect = lambda c, *_: c.subscribe("ward/#", qos=0)
    client.reconnect_delay_set(1, 5)
    try:
        client.connect(broker, 1883, keepalive=30)
    except OSError as exc:
        logger.warning("dashboard cannot reach broker %s: %s", broker, exc)
        return
    client.loop_start()
    stop.wait()
    client.loop_stop()


def serve(
    bind: str,
    broker: str | None,
    cert: Path | None,
    key: Path | None,
    seconds: float,
    names: dict[str, str] | None = None,
) -> None:
    """Run the EHR server (DNS, HTTP, HTTPS, dashboard subscriber) for ``seconds``.

    ``names`` are the DNS names it answers (host name -> lab address); the default
    ward's names (``dnsmsg.WARD_NAMES``) when None.
    """
    check_lab_target(bind)
    for address in (names or {}).values():
        check_lab_target(address)
    stop = threading.Event()
    threads = [threading.Thread(target=_dns_loop, args=(bind, stop, names), daemon=True)]
    servers = [ThreadingHTTPServer((bind, 80), _EhrHandler)]
    if cert and key:
        https = ThreadingHTTPServer((bind, 443), _EhrHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        https.socket = ctx.wrap_socket(https.socket, server_side=True)
        servers.append(https)
    threads += [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    if broker:
        check_lab_target(broker)
        threads.append(threading.Thread(target=_dashboard, args=(broker, stop), daemon=True))
    for t in threads:
        t.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for s in servers:
            s.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Entry point run inside the server's namespace."""
    p = argparse.ArgumentParser(description="iomt-ids lab EHR/DNS server")
    p.add_argument("--bind", required=True)
    p.add_argument("--broker")
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--seconds", type=float, default=600.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        serve(a.bind, a.broker, a.cert, a.key, a.seconds)
    except OSError as exc:
        raise CaptureError(f"lab server on {a.bind} failed: {exc}") from exc


if __name__ == "__main__":
    main()
