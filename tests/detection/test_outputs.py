"""Network alert outputs (:mod:`iomt_ids.detection.outputs`) against real servers: redis-server and a syslog socket."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iomt_ids.artifacts import ModelBundle
from iomt_ids.detection import (
    Alert,
    DetectConfig,
    Detector,
    JsonLinesSink,
    PcapSource,
    QueuedSink,
    RedisSink,
    StreamSink,
    SyslogSink,
    open_sink,
    run_detection,
)
from iomt_ids.detection.outputs import SYSLOG_FACILITIES, rfc5424_message
from iomt_ids.exceptions import ConfigError

redis = pytest.importorskip("redis")
REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on 127.0.0.1 (no persistence) that a test can kill and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        cmd = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not come up within 10 s"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self) -> Any:
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, socket_timeout=5, decode_responses=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _alert(i: int, category: str = "TCP/IP DDoS SYN") -> Alert:
    return Alert(
        timestamp=1_700_000_000.0 + i, window_id=i, window=10, category=category, score=0.99,
        src_ip="10.0.0.66", dest_ip="10.0.0.5", src_port=40001, dest_port=80, proto="TCP",
    )  # fmt: skip


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- redis -----------------------------------------------------------------------------------------


@needs_redis
def test_redis_list_holds_exactly_the_file_lines(
    redis_server: RedisServer, bundle: ModelBundle, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    file_sink = JsonLinesSink(out)
    sink = open_sink(f"redis://127.0.0.1:{redis_server.port}/0?key=eve")
    assert isinstance(sink, QueuedSink) and isinstance(sink.inner, RedisSink)
    summary = run_detection(
        PcapSource(pcaps["mixed"]), Detector(bundle), [file_sink, sink], DetectConfig(fold_seconds=0)
    )
    file_sink.close()
    sink.close()
    lines = out.read_text().splitlines()
    assert summary.alerts_emitted >= 20 and lines
    assert json.loads(lines[-1])["event_type"] == "stats"
    # LPUSH puts the newest first, as Suricata's list mode
    got = redis_server.client().lrange("eve", 0, -1)[::-1]
    assert got == lines
    assert (sink.sent, sink.dropped, sink.errors, sink.reconnects) == (len(lines), 0, 0, 0)
    rows = dict(sink.describe())
    assert rows["alerts output"] == f"redis://127.0.0.1:{redis_server.port}/0 list (lpush) eve"
    assert rows["  lines"] == f"sent {len(lines):,}, dropped 0, errors 0, reconnects 0"


@needs_redis
def test_redis_channel_mode_publishes_to_subscribers(redis_server: RedisServer) -> None:
    pubsub = redis_server.client().pubsub()
    pubsub.subscribe("alerts")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    sink = open_sink(f"redis://127.0.0.1:{redis_server.port}/0?key=alerts&mode=channel")
    alerts = [_alert(i) for i in range(5)]
    for a in alerts:
        sink.emit(a)
    sink.close()
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 5 and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=1)
        if m and m["type"] == "message":
            got.append(m["data"])
    pubsub.close()
    assert got == [a.to_json() for a in alerts]
    assert sink.sent == 5 and sink.dropped == 0


@needs_redis
def test_redis_server_killed_and_restarted_never_blocks_and_reconnects(redis_server: RedisServer) -> None:
    sink = QueuedSink(
        RedisSink("127.0.0.1", redis_server.port, key="eve", timeout=1.0), maxsize=50, close_timeout=5.0
    )
    for i in range(10):
        sink.emit(_alert(i))
    _wait(lambda: sink.sent == 10)
    redis_server.kill()
    # the server is gone: 500 emits must not wait on it (the queue of 50 fills, the rest drop)
    t0 = time.perf_counter()
    for i in range(10, 510):
        sink.emit(_alert(i))
    assert time.perf_counter() - t0 < 0.5
    _wait(lambda: sink.errors >= 2)
    assert sink.dropped >= 400
    redis_server.start()
    _wait(lambda: sink.reconnects >= 1 and sink.queued == 0, timeout=15)
    for i in range(510, 520):
        sink.emit(_alert(i))
    sink.close()
    got = [json.loads(x)["flow_id"] & 0xFFFFFFFFFF for x in redis_server.client().lrange("eve", 0, -1)]
    assert set(range(510, 520)) <= set(got)  # new lines arrive after the restart
    assert sink.reconnects >= 1 and sink.errors >= 2
    # every line is accounted for: sent to the new server, or dropped (the first 10 died with the old one)
    assert sink.sent + sink.dropped == 520 and sink.sent >= len(got)
    assert "reconnects" in dict(sink.describe())["  lines"]


# -- syslog ----------------------------------------------------------------------------------------

RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>(?P<version>1) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    rb"(?P<msgid>\S+) (?P<sd>-) (?P<msg>.*)$",
    re.DOTALL,
)


@pytest.fixture
def syslog_socket() -> Iterator[tuple[str, socket.socket]]:
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be longer
    path = f"/tmp/iomt-ids-syslog-{os.getpid()}-{threading.get_ident()}.sock"
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield path, sock
    finally:
        sock.close()
        if os.path.exists(path):
            os.unlink(path)


def test_syslog_unix_socket_gets_rfc5424_messages(syslog_socket: tuple[str, socket.socket]) -> None:
    path, receiver = syslog_socket
    sink = open_sink(f"syslog://?facility=local3&ident=med-ids&socket={path}")
    assert isinstance(sink, QueuedSink) and isinstance(sink.inner, SyslogSink)
    items = [_alert(0, "TCP/IP DDoS SYN"), _alert(1, "TCP/IP DoS SYN"), _alert(2, "Recon port scan")]
    for a in items:
        sink.emit(a)

    class _Stats:
        def to_json(self) -> str:
            return '{"timestamp":"x","event_type":"stats","stats":{},"app_proto":"iomt-ids"}'

    sink.emit_event(_Stats())
    sink.close()
    msgs = [RFC5424.match(receiver.recv(65536)) for _ in range(4)]
    assert all(msgs)
    local3 = SYSLOG_FACILITIES["local3"]
    assert local3 == 19
    # severity 1 -> alert (1), 2 -> critical (2), 3 -> warning (4), stats -> informational (6)
    assert [int(m["pri"]) for m in msgs] == [local3 * 8 + s for s in (1, 2, 4, 6)]
    m = msgs[0]
    assert m["version"] == b"1" and m["app"] == b"med-ids" and m["procid"] == str(os.getpid()).encode()
    assert m["host"] == socket.gethostname().encode()
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", m["ts"])
    assert [x["msgid"] for x in msgs] == [b"alert", b"alert", b"alert", b"stats"]
    assert json.loads(m["msg"]) == items[0].to_eve()
    assert json.loads(msgs[2]["msg"])["alert"]["severity"] == 3
    assert sink.sent == 4 and sink.errors == 0


def test_syslog_receiver_restart_reconnects(syslog_socket: tuple[str, socket.socket]) -> None:
    path, receiver = syslog_socket
    sink = QueuedSink(SyslogSink(path), maxsize=100, backoff_initial=0.05, backoff_max=0.2)
    sink.emit(_alert(0))
    assert receiver.recv(65536)
    receiver.close()
    os.unlink(path)
    sink.emit(_alert(1))
    _wait(lambda: sink.errors >= 2)
    again = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    again.bind(path)
    again.settimeout(5)
    try:
        _wait(lambda: sink.reconnects >= 1)
        m = RFC5424.match(again.recv(65536))
        assert m and json.loads(m["msg"])["flow_id"] & 0xFFFFFFFFFF == 1  # retried after the reconnect
        assert int(m["pri"]) == 21 * 8 + 1  # default facility local5, DDoS -> alert
        sink.close()
    finally:
        again.close()
    assert sink.sent == 2 and sink.dropped == 0


def test_syslog_udp(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    try:
        sink = open_sink(f"syslog://127.0.0.1:{port}?facility=user")
        sink.emit(_alert(0, "Recon port scan"))
        sink.close()
        m = RFC5424.match(receiver.recv(65536))
    finally:
        receiver.close()
    assert m and int(m["pri"]) == 1 * 8 + 4 and m["app"] == b"iomt-ids"


def test_rfc5424_message_format() -> None:
    msg = rfc5424_message("{}", facility=21, severity=6, app_name="a b", msgid="stats", hostname="", procid=1)
    assert re.fullmatch(rb"<174>1 \S+Z - ab 1 stats - \{\}", msg)


# -- queue -----------------------------------------------------------------------------------------


class _SlowSink:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.got: list[str] = []

    def emit(self, alert: Any) -> None:
        time.sleep(self.delay)
        self.got.append(alert.to_json())


def test_full_queue_drops_and_counts_instead_of_blocking() -> None:
    inner = _SlowSink(0.05)
    sink = QueuedSink(inner, maxsize=10, close_timeout=0.3)
    t0 = time.perf_counter()
    for i in range(200):
        sink.emit(_alert(i))
    assert time.perf_counter() - t0 < 0.2  # 200 slow sends would take 10 s
    assert sink.dropped >= 200 - 10 - 2
    sink.close()  # 0.3 s cannot send the ~10 queued lines: the rest is dropped and said
    assert sink.dropped_at_close > 0
    assert sink.sent + sink.dropped == 200
    rows = dict(sink.describe())
    assert rows["  dropped at close"].startswith(f"{sink.dropped_at_close:,} (still queued after 0.3 s)")
    assert rows["alerts output"] == "_SlowSink"
    sink.emit(_alert(999))  # after close: dropped, never raises
    assert sink.sent + sink.dropped == 201


def test_close_flushes_what_is_queued() -> None:
    inner = _SlowSink(0.001)
    sink = QueuedSink(inner, maxsize=1000)
    for i in range(300):
        sink.emit(_alert(i))
    sink.close()
    assert len(inner.got) == sink.sent == 300 and sink.dropped == 0


# -- specs -----------------------------------------------------------------------------------------


def test_open_sink_files_and_stdout(tmp_path: Path) -> None:
    assert isinstance(open_sink("-"), StreamSink)
    s = open_sink(str(tmp_path / "a.jsonl"))
    assert isinstance(s, JsonLinesSink)
    s.close()
    sink = open_sink("syslog")
    assert isinstance(sink, QueuedSink) and sink.inner.socket_path == "/dev/log"
    assert sink.inner.facility == 21 and sink.inner.ident == "iomt-ids"
    sink.close()
    sink = open_sink("redis://")
    assert sink.inner.target == "redis://127.0.0.1:6379/0 list (lpush) suricata"
    sink.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("redis://host:notaport", "alerts output 'redis://host:notaport': bad port in 'host:notaport'; expected HOST:PORT"),
        ("redis://h:70000", "bad port in 'h:70000'; expected HOST:PORT with PORT an integer 1..65535"),
        ("redis://h:6379/x", "bad database 'x'; expected redis://HOST:PORT/DB"),
        ("redis://h/0?keys=a", "unknown query field 'keys'; expected one of key, mode"),
        ("redis://h/0?mode=stream", "unknown mode 'stream'; expected list (LPUSH, the default), rpush or channel"),
        ("redis://h/0?key=", "query field 'key' is empty"),
        ("redis:h", "expected redis://HOST:PORT/DB?key=NAME&mode=list|channel"),
        ("syslog://?facility=local9", "unknown facility 'local9'; expected one of kern, user"),
        ("syslog?level=info", "unknown query field 'level'; expected one of facility, ident, socket"),
        ("syslog://h:514?socket=/dev/log", "either a HOST (UDP) or socket= (local), not both"),
        ("syslog://?ident=a%20b", "ident 'a b' must be 1..48 printable ASCII characters"),
        ("syslog:/x", "expected 'syslog', 'syslog://?facility=local5"),
        ("kafka://h:9092", "unknown scheme 'kafka'; expected a file path, '-', syslog[://...] or redis://"),
    ],
)  # fmt: skip
def test_bad_specs_raise_config_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        open_sink(spec)
    assert message in str(e.value)


# -- CLI -------------------------------------------------------------------------------------------


@needs_redis
def test_cli_detect_alerts_to_redis(
    redis_server: RedisServer, bundle_dir: Path, pcaps: dict[str, Path]
) -> None:
    spec = f"redis://127.0.0.1:{redis_server.port}/0?key=iomt"
    cmd = [sys.executable, "-c", "from iomt_ids.cli import main; main()", "detect", "-m", str(bundle_dir),
           "--pcap", str(pcaps["mixed"]), "--alerts", spec, "--fold-seconds", "0", "-q"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = redis_server.client().lrange("iomt", 0, -1)[::-1]
    events = [json.loads(x) for x in lines]
    assert events[-1]["event_type"] == "stats"
    n_alerts = sum(e["event_type"] == "alert" for e in events)
    assert n_alerts == events[-1]["stats"]["detect"]["alerts_emitted"] >= 20
    out = res.stdout
    assert "detect summary (end of input)" in out
    assert f"redis://127.0.0.1:{redis_server.port}/0 list (lpush) iomt" in out
    assert f"sent {len(lines):,}, dropped 0, errors 0, reconnects 0" in out
    assert "Traceback" not in res.stderr


def test_cli_detect_bad_alerts_spec_exits_2(bundle_dir: Path, pcaps: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from iomt_ids.cli import _register, app

    _register()
    res = CliRunner().invoke(
        app,
        ["detect", "-m", str(bundle_dir), "--pcap", str(pcaps["benign"]), "--alerts", "redis://h:notaport"],
    )
    assert res.exit_code == 2, res.output
    assert "bad port in 'h:notaport'" in res.output and "Traceback" not in res.output
