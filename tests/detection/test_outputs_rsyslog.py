"""The syslog output into a real rsyslog daemon (Debian's rsyslogd, started on a private socket)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from iomt_ids.detection import DetectConfig, Detector, JsonLinesSink, PcapSource, open_sink, run_detection

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
LINE = re.compile(r"^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) (alert|stats) - (\{.*\})$")


@pytest.fixture
def rsyslog(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not Path(RSYSLOGD).exists():
        pytest.skip("rsyslogd not installed (apt-get install rsyslog)")
    sock, out = tmp_path / "log.sock", tmp_path / "out.log"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on")\n'
        'template(name="p23" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% '
        '%PROCID% %MSGID% %STRUCTURED-DATA% %msg%\\n")\n'
        f'*.* action(type="omfile" file="{out}" template="p23")\n'
    )
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not sock.exists():
        proc.kill()
        pytest.fail(f"rsyslogd did not open {sock}: {proc.communicate()[0].decode(errors='replace')[-500:]}")
    yield sock, out
    proc.terminate()
    proc.wait(timeout=10)


def test_rsyslog_receives_every_eve_line_as_rfc5424(
    rsyslog: tuple[Path, Path], bundle_dir: Path, pcaps: dict[str, Path], tmp_path: Path
) -> None:
    from iomt_ids.artifacts import load_bundle

    sock, out = rsyslog
    ref = tmp_path / "ref.jsonl"
    sinks = [JsonLinesSink(ref, append=False), open_sink(f"syslog:?socket={sock}&facility=local5")]
    run_detection(PcapSource(pcaps["mixed"]), Detector(load_bundle(bundle_dir), explain=False), sinks,
                  DetectConfig(fold_seconds=0))  # fmt: skip
    for s in sinks:
        s.close()
    expected = ref.read_text().splitlines()
    deadline = time.monotonic() + 15
    got: list[str] = []
    while time.monotonic() < deadline:
        got = out.read_text().splitlines() if out.exists() else []
        if len(got) >= len(expected):
            break
        time.sleep(0.1)
    assert len(got) == len(expected) > 20
    for line, want in zip(got, expected, strict=True):
        m = LINE.match(line)
        assert m, line[:200]
        pri, _, _, app, _, msgid, msg = m.groups()
        event = json.loads(msg)
        assert event == json.loads(want) and app == "iomt-ids" and msgid == event["event_type"]
        facility, severity = divmod(int(pri), 8)
        assert facility == 21  # local5
        if msgid == "alert":
            assert severity == {1: 1, 2: 2, 3: 4}[event["alert"]["severity"]]
        else:
            assert severity == 6
