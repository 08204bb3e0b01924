"""Alert folding over a time interval, with time injected (a fake clock or event time)."""

from __future__ import annotations

import pytest

from iomt_ids.detection.alerts import Alert
from iomt_ids.detection.folding import AlertFolder
from iomt_ids.exceptions import ConfigError


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _a(src: str = "10.0.0.66", cat: str = "TCP/IP DDoS SYN", ts: float = 0.0, score: float = 0.9) -> Alert:
    return Alert(timestamp=ts, window_id=0, window=10, category=cat, score=score, src_ip=src)


def test_first_alert_written_repeats_counted_summary_when_interval_closes() -> None:
    clock = FakeClock()
    folder = AlertFolder(interval=60, clock=clock)
    out = folder.push(_a(score=0.8))
    assert len(out) == 1 and out[0].count == 1 and not out[0].summary
    for k, t in enumerate((1, 10, 59)):
        clock.now = 1000.0 + t
        assert folder.push(_a(ts=float(t), score=0.8 + k / 100)) == []
    assert folder.expire() == []  # 59 s after the first: still open
    clock.now = 1060.0
    (summary,) = folder.expire()
    assert summary.summary and summary.count == 4
    assert summary.score == pytest.approx(0.82)  # the highest of the interval
    assert summary.first_seen == 0.0 and summary.timestamp == 59.0
    assert len(folder) == 0
    assert (folder.raw, folder.emitted, folder.suppressed) == (4, 2, 3)
    # the next alert of the pair opens a new interval and is written at once
    clock.now = 1061.0
    assert [a.count for a in folder.push(_a(ts=61.0))] == [1]


def test_pairs_are_folded_separately_by_source_and_class() -> None:
    clock = FakeClock()
    folder = AlertFolder(interval=10, clock=clock)
    written = []
    for src, cat in [("a", "X"), ("a", "X"), ("b", "X"), ("a", "Y"), ("b", "X"), ("a", "X")]:
        written += folder.push(_a(src=src, cat=cat))
    assert [(w.src_ip, w.category) for w in written] == [("a", "X"), ("b", "X"), ("a", "Y")]
    clock.now += 10
    summaries = {(s.src_ip, s.category): s.count for s in folder.expire()}
    assert summaries == {("a", "X"): 3, ("b", "X"): 2}  # ("a", "Y") did not repeat: no summary


def test_summary_is_written_by_the_next_push_after_the_interval() -> None:
    clock = FakeClock()
    folder = AlertFolder(interval=5, clock=clock)
    folder.push(_a())
    folder.push(_a())
    clock.now += 6
    out = folder.push(_a(src="other"))
    assert [(a.src_ip, a.count, a.summary) for a in out] == [("10.0.0.66", 2, True), ("other", 1, False)]


def test_event_time_without_a_clock() -> None:
    folder = AlertFolder(interval=60)
    assert len(folder.push(_a(ts=100.0))) == 1
    assert folder.push(_a(ts=150.0)) == []
    assert folder.expire(159.9) == []
    assert [s.count for s in folder.expire(160.0)] == [2]
    assert folder.expire() == []  # no time given, no clock: nothing to expire


def test_state_is_bounded_oldest_interval_closed_first() -> None:
    clock = FakeClock()
    folder = AlertFolder(interval=3600, max_keys=3, clock=clock)
    for i in range(3):
        folder.push(_a(src=f"h{i}"))
        folder.push(_a(src=f"h{i}"))
    assert len(folder) == 3
    out = folder.push(_a(src="h3"))
    assert [(a.src_ip, a.count, a.summary) for a in out] == [("h0", 2, True), ("h3", 1, False)]
    assert len(folder) == 3 and folder.evicted == 1
    for i in range(1000):
        folder.push(_a(src=f"x{i}"))
    assert len(folder) == 3


def test_flush_closes_everything_and_zero_interval_writes_all() -> None:
    folder = AlertFolder(interval=60, clock=FakeClock())
    for _ in range(5):
        folder.push(_a())
    folder.push(_a(src="solo"))
    assert [(s.src_ip, s.count) for s in folder.flush()] == [("10.0.0.66", 5)]
    assert len(folder) == 0
    off = AlertFolder(interval=0)
    assert sum(len(off.push(_a())) for _ in range(4)) == 4 and off.suppressed == 0


@pytest.mark.parametrize("kw", [{"interval": -1}, {"max_keys": 0}])
def test_bad_settings(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="fold"):
        AlertFolder(**kw)  # type: ignore[arg-type]


def test_a_quiet_pair_starts_a_new_episode_written_at_once() -> None:
    folder = AlertFolder(interval=60, idle=10)

    def a(ts: float) -> Alert:
        return Alert(
            timestamp=ts, window_id=int(ts), window=10, category="RECON", score=0.9, src_ip="10.0.0.9"
        )

    first = [folder.push(a(t)) for t in (0.0, 1.0, 2.0)]  # one episode: first alert written, two counted
    assert [len(x) for x in first] == [1, 0, 0]
    out = folder.push(a(15.0))  # 13 s of quiet > idle: the old summary, then this alert at once
    assert [x.summary for x in out] == [True, False]
    assert out[0].count == 3 and out[0].timestamp == 2.0 and out[1].timestamp == 15.0
    assert folder.push(a(20.0)) == []  # within the new episode: counted
    assert [s.count for s in folder.flush()] == [2]
    assert folder.raw == 5 and folder.emitted == 4 and folder.suppressed == 3
    with pytest.raises(ConfigError, match="idle"):
        AlertFolder(idle=-1)


def test_without_idle_the_interval_is_fixed() -> None:
    folder = AlertFolder(interval=60)
    alerts = [
        Alert(timestamp=t, window_id=0, window=10, category="RECON", score=0.9, src_ip="x")
        for t in (0, 30, 59)
    ]
    assert [len(folder.push(x)) for x in alerts] == [1, 0, 0]
