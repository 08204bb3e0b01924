"""The dashboard: the alert-file aggregator, its endpoint, the docs auth, and a real headless-Chromium run."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from iomt_ids.artifacts import ModelBundle
from iomt_ids.serving import ServeSettings, create_app
from iomt_ids.serving.dashboard import AlertFeed, card_from_dir, create_dashboard_app

KEY = "dashboard-test-key"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def alert_line(
    ts: str,
    src: str = "10.77.0.5",
    category: str = "RECON",
    count: int = 1,
    explanation: list[str] | None = None,
    summary: bool = False,
) -> str:
    """One EVE alert line like ``iomt-ids detect`` writes."""
    alert: dict[str, Any] = {
        "action": "allowed",
        "gid": 1,
        "signature_id": 9200004,
        "rev": 1,
        "signature": f"iomt-ids {category}",
        "category": category,
        "severity": 3,
        "score": 0.99,
        "count": count,
        "model": "gru_dnn",
        "model_version": "site-abc",
        "window": 10,
        "novelty": 2.3,
        "metadata": {"detector": ["ml"], "model_version": ["site-abc"], "task": ["6"], "site": ["site-abc"]},
    }
    if explanation is not None:
        alert["metadata"]["explanation"] = explanation
    if summary:
        alert["summary"] = True
    event = {
        "timestamp": ts,
        "flow_id": 1,
        "event_type": "alert",
        "src_ip": src,
        "src_port": 40000,
        "dest_ip": "10.77.0.9",
        "dest_port": 1883,
        "proto": "TCP",
        "alert": alert,
        "app_proto": "iomt-ids",
    }
    return json.dumps(event, separators=(",", ":")) + "\n"


def stats_line(ts: str, warnings_: list[str]) -> str:
    """One EVE stats line with model-fit warnings."""
    detect = {"alerts_emitted": 3, "windows": 100, "site_adapted": False, "warnings": warnings_}
    event = {"timestamp": ts, "event_type": "stats", "stats": {"detect": detect, "model_version": "m"}}
    return json.dumps(event) + "\n"


T0 = "2026-12-01T10:00:00.123456+0000"
T1 = "2026-12-01T10:00:40.000000+0000"
T2 = "2026-12-01T10:02:05.000000+0000"
WARNING = "model not adapted: 99% of windows raised an alert"


def _write_base(path: Path) -> None:
    path.write_text(
        alert_line(T0, "10.77.0.5", "RECON")
        + alert_line(T1, "10.77.0.5", "RECON", count=4, summary=True)
        + "this is not json\n"
        + stats_line(T1, [WARNING])
        + alert_line(T2, "10.77.0.7", "DoS", explanation=["Rate=1523 (+9.1 sd from the site's normal)", "x"])
    )


# -- the aggregator ------------------------------------------------------------------
def test_feed_counts_with_alert_count_and_skips_stats(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    _write_base(path)
    feed = AlertFeed(path)
    assert feed.poll() == 5
    snap = feed.snapshot()
    assert snap["total_alerts"] == 1 + 4 + 1 and snap["alert_lines"] == 3
    assert snap["malformed"] == 1 and snap["stats_lines"] == 1
    assert snap["categories"] == [["RECON", 5], ["DoS", 1]]
    assert snap["sources"] == [["10.77.0.5", 5], ["10.77.0.7", 1]]
    assert snap["stats"]["warnings"] == [WARNING] and snap["stats"]["site_adapted"] is False
    latest = snap["latest"][0]
    assert latest["src_ip"] == "10.77.0.7" and latest["category"] == "DoS"
    assert latest["explanation"][0].startswith("Rate=1523")
    assert snap["latest"][1]["summary"] is True and snap["latest"][1]["count"] == 4
    assert snap["last_alert"]["task"] == "6" and snap["last_alert"]["site"] == "site-abc"


def test_feed_rate_per_minute_is_zero_filled(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    _write_base(path)
    feed = AlertFeed(path)
    feed.poll()
    rate = feed.snapshot()["rate"]
    assert [r["alerts"] for r in rate] == [5, 0, 1]  # 10:00 (1 + 4), 10:01, 10:02
    assert rate[0]["minute"].startswith("2026-12-01T10:00")


def test_feed_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    feed = AlertFeed(path)
    assert feed.poll() == 0 and not feed.snapshot()["exists"]  # the file may come later
    _write_base(path)
    assert feed.poll() == 5
    offset = feed.offset
    assert feed.poll() == 0 and feed.offset == offset
    line = alert_line(T2, "10.77.0.8", "MQTT", count=2)
    with path.open("a") as fh:  # a half-written line waits for its newline
        fh.write(line[:40])
    assert feed.poll() == 0 and feed.snapshot()["total_alerts"] == 6
    with path.open("a") as fh:
        fh.write(line[40:] + "[1, 2]\n")
    assert feed.poll() == 2
    snap = feed.snapshot()
    assert snap["total_alerts"] == 8 and snap["malformed"] == 2  # a JSON array is not an event
    assert snap["latest"][0]["src_ip"] == "10.77.0.8"
    assert feed.offset == path.stat().st_size


def test_feed_malformed_alerts_never_raise(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    bad = [
        '{"event_type":"alert","timestamp":"yesterday","alert":{"category":"DoS"}}',
        '{"event_type":"alert","timestamp":"2026-12-01T10:00:00+0000","alert":"DoS"}',
        '{"event_type":"alert","timestamp":"2026-12-01T10:00:00+0000","alert":{"count":-3}}',
        '{"event_type":"alert","timestamp":"2026-12-01T10:00:00+0000","alert":{"count":true}}',
        '{"event_type":"alert","alert":{}}',
        "\xff\xfe garbage",
        '{"event_type":"flow"}',
        "",
    ]
    path.write_text("\n".join(bad) + "\n" + alert_line(T0))
    feed = AlertFeed(path)
    feed.poll()
    snap = feed.snapshot()
    assert snap["malformed"] == 6 and snap["total_alerts"] == 1
    json.dumps(snap, allow_nan=False)


def test_feed_starts_over_when_the_file_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    _write_base(path)
    feed = AlertFeed(path)
    feed.poll()
    path.write_text(alert_line(T0, "10.1.1.1", "DDoS"))
    feed.poll()
    snap = feed.snapshot()
    assert snap["total_alerts"] == 1 and snap["sources"] == [["10.1.1.1", 1]] and snap["malformed"] == 0


def test_feed_catches_up_a_backlog_over_several_polls(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text("".join(alert_line(T0, count=1) for _ in range(200)))
    feed = AlertFeed(path, max_bytes_per_poll=4096)
    feed.poll()
    assert feed.snapshot()["behind"] is True
    while feed.poll():
        pass
    snap = feed.snapshot()
    assert snap["total_alerts"] == 200 and snap["behind"] is False


def test_site_card_reads_site_json(tmp_path: Path) -> None:
    site = {
        "version": "site-abc",
        "base": {
            "version": "gru_dnn-6c-x",
            "task": 6,
            "classes": ["Benign", "DoS"],
            "metrics": {"accuracy": 0.9},
        },
        "calibration": {"seconds": 119.7},
        "false_alarms_per_hour_target": 1.0,
        "streams": {
            "10": {
                "threshold": 9.4,
                "alpha_target": 9e-5,
                "alpha_bound": 0.0054,
                "false_alarms_per_hour_bound": 29.9,
            }
        },
        "validation_recall": {"before": {"attack_recall": 0.98}, "after": {"attack_recall": 0.97}},
        "classifier": {"dir": "classifier"},
    }
    (tmp_path / "site.json").write_text(json.dumps(site))
    card = card_from_dir(tmp_path)
    assert card["kind"] == "site" and card["version"] == "site-abc" and card["task"] == 6
    assert card["site"]["calibration_seconds"] == 119.7
    assert card["site"]["streams"]["10"]["alpha_bound"] == 0.0054
    assert card["site"]["validation_recall"]["after"]["attack_recall"] == 0.97
    assert card_from_dir(tmp_path / "missing")["kind"] == "error"


# -- the endpoint and the docs ---------------------------------------------------------------
def test_page_is_open_but_its_data_needs_the_key(bundle: ModelBundle, tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    _write_base(path)
    c = TestClient(create_app(bundle, ServeSettings(api_key=KEY), alerts=path))
    page = c.get("/")
    assert page.status_code == 200 and "static/dashboard.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/dashboard.js").status_code == 200
    assert c.get("/api/dashboard").status_code == 401
    r = c.get("/api/dashboard", headers={"X-API-Key": KEY})
    assert r.status_code == 200 and KEY not in r.text
    data = r.json()
    assert data["alerts"]["total_alerts"] == 6
    assert data["card"]["version"] == bundle.version and data["card"]["classes"] == list(bundle.classes)
    c.post("/v1/predict", json={"rows": []}, headers={"X-API-Key": KEY})
    traffic = c.get("/api/dashboard", headers={"X-API-Key": KEY}).json()["traffic"]
    assert traffic["predict_requests"] == 1 and traffic["errors"] >= 1  # dashboard polls are not counted
    assert "/api/dashboard" not in c.get("/openapi.json", headers={"X-API-Key": KEY}).text


def test_serve_without_alerts_shows_card_and_traffic(bundle: ModelBundle) -> None:
    data = TestClient(create_app(bundle)).get("/api/dashboard").json()
    assert (
        data["alerts"] is None and data["traffic"]["rows_scored"] == 0 and data["card"]["task"] == bundle.task
    )


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_key_when_one_is_set(bundle: ModelBundle, path: str) -> None:
    c = TestClient(create_app(bundle, ServeSettings(api_key=KEY)))
    assert c.get(path).status_code == 401
    assert c.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
    r = c.get(path, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and KEY not in r.text
    assert "/v1/predict" in r.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_stay_open_without_a_key_and_off_with_no_docs(bundle: ModelBundle, path: str) -> None:
    assert TestClient(create_app(bundle)).get(path).status_code == 200
    off = TestClient(create_app(bundle, ServeSettings(api_key=KEY, docs=False)))
    assert off.get(path, headers={"X-API-Key": KEY}).status_code == 404


def test_cli_no_docs_flag_reaches_the_settings(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from iomt_ids.cli import _register, app

    _register()
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda web_app, **kw: seen.update(app=web_app))
    res = CliRunner().invoke(app, ["serve", "--model", str(bundle_dir), "--no-docs"])
    assert res.exit_code == 0, res.output
    c = TestClient(seen["app"])
    assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
    assert c.get("/").status_code == 200


# -- a real browser -------------------------------------------------------------------------------
@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``iomt-ids dashboard``'s app under uvicorn on a free loopback port, following ``alerts.jsonl``."""
    path = tmp_path / "alerts.jsonl"
    _write_base(path)
    app = create_dashboard_app(path, settings=ServeSettings(api_key=KEY))
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
    yield f"http://127.0.0.1:{port}", path
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _browser() -> Any:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")) or not Path(CHROMEDRIVER).exists():
        pytest.skip(
            f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def test_dashboard_in_headless_chromium(dashboard_url: tuple[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, path = dashboard_url
    driver = _browser()
    try:
        driver.set_page_load_timeout(15)
        driver.get(f"{url}/#key={KEY}")  # the fragment never reaches the server
        wait = WebDriverWait(driver, 10)

        def text(element_id: str) -> str:
            return str(driver.find_element(By.ID, element_id).text)

        wait.until(lambda d: text("total-alerts") == "6")
        assert "#key" not in driver.current_url  # the key is taken out of the address bar
        assert text("alert-lines") == "3" and text("malformed") == "1"
        bars = driver.find_elements(By.CSS_SELECTOR, "#category-chart .bar-row")
        assert [(b.get_attribute("data-label"), b.get_attribute("data-value")) for b in bars] == [
            ("RECON", "5"),
            ("DoS", "1"),
        ]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#rate-chart rect.bar")) == 3
        rows = driver.find_elements(By.CSS_SELECTOR, "#latest tbody tr")
        assert rows[0].find_element(By.CSS_SELECTOR, "td.flow").get_attribute("data-src") == "10.77.0.7"
        assert "10.77.0.7:40000 → 10.77.0.9:1883" in rows[0].text
        assert "Rate=1523 (+9.1 sd from the site's normal)" in rows[0].text
        warning = driver.find_element(By.ID, "warnings")
        assert warning.is_displayed() and WARNING in warning.text
        assert "site-abc" in text("card")  # the card from the alert lines (no --model)
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        # detect keeps appending: the page follows within a few seconds
        with path.open("a") as fh:
            fh.write(alert_line(T2, "10.77.0.99", "MQTT", count=10, explanation=["fresh explanation"]))
            fh.write("{broken\n")
        WebDriverWait(driver, 8).until(lambda d: text("total-alerts") == "16")
        assert text("malformed") == "2"
        first = driver.find_elements(By.CSS_SELECTOR, "#latest tbody tr")[0]
        assert "10.77.0.99" in first.text and "fresh explanation" in first.text
        top = driver.find_elements(By.CSS_SELECTOR, "#category-chart .bar-row")[0]
        assert (top.get_attribute("data-label"), top.get_attribute("data-value")) == ("MQTT", "10")
        driver.save_screenshot(str(tmp_path / "dashboard-after.png"))
        logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    finally:
        driver.quit()


def test_dashboard_asks_for_the_key(dashboard_url: tuple[str, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = dashboard_url
    driver = _browser()
    try:
        driver.get(f"{url}/")
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "keyform").is_displayed())
        driver.find_element(By.ID, "keyinput").send_keys(KEY)
        driver.find_element(By.CSS_SELECTOR, "#keyform button").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "total-alerts").text == "6")
    finally:
        driver.quit()
