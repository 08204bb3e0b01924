"""The service through a real uvicorn server on loopback, in a thread and as the CLI subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn

from iomt_ids.artifacts import ModelBundle
from iomt_ids.serving import ServeSettings, create_app

KEY = "uvicorn-test-key"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(bundle: ModelBundle) -> Iterator[str]:
    """A uvicorn server in a background thread, on a socket bound to a free loopback port."""
    app = create_app(bundle, ServeSettings(api_key=KEY, max_rows=100))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_real_server_scores_json_and_csv(
    server_url: str, bundle: ModelBundle, json_rows: list[dict[str, Any]], rows_frame: pd.DataFrame
) -> None:
    headers = {"X-API-Key": KEY}
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as c:
        assert c.get("/healthz").json()["model_version"] == bundle.version
        a = c.post("/v1/predict", json={"rows": json_rows})
        b = c.post(
            "/v1/predict", content=rows_frame.to_csv(index=False), headers={"Content-Type": "text/csv"}
        )
        assert a.status_code == b.status_code == 200
        assert a.json()["n_rows"] == len(json_rows)
        assert [p["class"] for p in a.json()["predictions"]] == list(bundle.predict(rows_frame))
        assert [p["class"] for p in b.json()["predictions"]] == list(bundle.predict(rows_frame))


def test_real_server_refuses_without_key(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=10) as c:
        r = c.get("/v1/model")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_real_server_limits_and_concurrency(server_url: str, json_rows: list[dict[str, Any]]) -> None:
    headers = {"X-API-Key": KEY}
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as c:
        r = c.post("/v1/predict", json={"rows": json_rows * 3})  # 144 > 100
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_rows"
    results: list[int] = []

    def hit() -> None:
        with httpx.Client(base_url=server_url, headers=headers, timeout=10) as c:
            results.extend(c.post("/v1/predict", json={"rows": json_rows[:10]}).status_code for _ in range(5))

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 20
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as c:
        assert "iomt_ids_rows_scored_total" in c.get("/metrics").text


def test_cli_serve_subprocess(bundle_dir: Path, json_rows: list[dict[str, Any]]) -> None:
    """`iomt-ids serve --model RUN_DIR` as a real process: key from the environment, then a clean stop."""
    port = _free_port()
    env = {**os.environ, "IOMT_IDS_API_KEY": KEY, "IOMT_IDS_MAX_ROWS": "20"}
    code = "from iomt_ids.cli import main; main()"
    cmd = [
        sys.executable,
        "-c",
        code,
        "serve",
        "--model",
        str(bundle_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up within 60 s"
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/v1/model").status_code == 401
            info = c.get("/v1/model", headers={"X-API-Key": KEY}).json()
            assert info["max_rows"] == 20 and info["release"] == "v2"
            r = c.post("/v1/predict", json={"rows": json_rows[:20]}, headers={"X-API-Key": KEY})
            assert r.status_code == 200 and r.json()["model_version"] == info["version"]
            assert "server" not in r.headers  # no uvicorn banner
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode in (0, -15), out
    assert "Traceback" not in out
