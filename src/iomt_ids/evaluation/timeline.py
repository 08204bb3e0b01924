"""Score EVE alerts against a timeline of attacks, the way an operator reads them.

An operator does not see per-window labels: they see alert lines with timestamps and
a log of when each attack ran. This module turns the two into the numbers that matter
on a console:

* **false alerts per hour of benign time**: alerts outside every attack interval,
  per hour of the time during which no attack was running;
* per attack: was it **detected** (any alert inside its interval), how soon
  (``first_s``), was it **attributed** (an alert names one of its attackers as
  ``src_ip``) and was it **named** (the majority 6-class family of its alerts, weighted
  by ``alert.count``, is the attack's family).

The arithmetic is that of the reference script ``shared/tools/score_timeline.py`` and
agrees with it exactly, quirks included:

* an attack's interval is ``[start - 1, end + grace]``, both ends inclusive; an alert
  inside any interval is not a false alert, and counts for every attack whose interval
  holds it (overlapping attacks share alerts);
* the observed span runs from ``min(attack starts, first alert) - 60`` to
  ``max(attack ends, last alert) + 25``; benign time is that span minus
  ``end + grace - start + 1`` for *every* attack, so overlapping intervals are
  subtracted twice (benign time can then even come out negative);
* an alert line stands for ``alert.count`` alerts (folded repeats; absent, ``null``
  or ``0`` mean 1); only lines with ``event_type == "alert"`` count;
* alerts are ordered by (timestamp, src_ip, dest_ip, count, category) and a tie in the
  majority vote goes to the family whose first alert comes first in that order.

Timeline file: a JSON list of objects with ``attack`` (a class name such as
``"TCP/IP DDoS SYN"``), ``start`` and ``end`` (Unix seconds) and ``attackers`` (the
attackers' IP addresses); other keys are ignored. Alerts file: Suricata EVE JSON lines.

Examples
--------
>>> family("TCP/IP DDoS SYN"), family("MQTT-DoS-Connect_Flood"), family("ARP spoofing"), family(None)
('DDoS', 'MQTT', 'SPOOFING', '?')
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iomt_ids.exceptions import BadValueError, ConfigError, DataError, SchemaError

__all__ = [
    "LEAD_IN_S",
    "TAIL_S",
    "Alert",
    "AlertLog",
    "Attack",
    "AttackResult",
    "TimelineScore",
    "family",
    "load_alerts",
    "load_timeline",
    "parse_timestamp",
    "score_timeline",
]

log = logging.getLogger(__name__)

#: Seconds of observed time counted before the first attack or alert.
LEAD_IN_S = 60
#: Seconds of observed time counted after the last attack end or alert.
TAIL_S = 25


def family(name: str | None) -> str:
    """The 6-class family of a dataset class name or an alert category.

    Case, ``_`` and ``-`` do not matter, so 19-class names, file-name stems and 6-class
    names all map: ``MQTT...`` -> ``MQTT``, ``RECON...`` -> ``RECON``, anything with
    ``SPOOF`` or starting with ``ARP`` -> ``SPOOFING``, then ``DDOS`` -> ``DDoS``,
    ``DOS`` -> ``DoS``. Any other name comes back upper-cased (``"Benign"`` ->
    ``"BENIGN"``); an empty or missing name is ``"?"``.

    Examples
    --------
    >>> [family(n) for n in ("Recon-Port_Scan", "TCP_IP-DoS-UDP", "DDoS", "Benign", "")]
    ['RECON', 'DoS', 'DDoS', 'BENIGN', '?']
    """
    n = (name or "").upper().replace("_", " ").replace("-", " ")
    if n.startswith("MQTT"):
        return "MQTT"
    if n.startswith("RECON"):
        return "RECON"
    if "SPOOF" in n or n.startswith("ARP"):
        return "SPOOFING"
    if "DDOS" in n:
        return "DDoS"
    if "DOS" in n:
        return "DoS"
    return n.strip() or "?"


@dataclass(frozen=True)
class Attack:
    """One entry of the timeline: which attack ran, when, and from which addresses.

    ``start`` and ``end`` keep the JSON number type (int or float) so that the
    arithmetic, and hence the rounding, is the reference's.
    """

    attack: str
    start: float
    end: float
    attackers: tuple[str, ...]


@dataclass(frozen=True)
class Alert:
    """One EVE alert line: when, from where, to where, how many (folded) and which category."""

    timestamp: float
    src_ip: str | None
    dest_ip: str | None
    count: int
    category: str | None
    line: int = 0

    def sort_key(self) -> tuple[Any, ...]:
        """The reference's order: (timestamp, src_ip, dest_ip, count, category), ``None`` first.

        The reference sorts raw tuples, which fails when a ``None`` meets a string; putting
        ``None`` first agrees with it wherever it does not fail.
        """

        def k(v: str | None) -> tuple[bool, str]:
            return (v is not None, v or "")

        return (self.timestamp, k(self.src_ip), k(self.dest_ip), self.count, k(self.category))


@dataclass(frozen=True)
class AlertLog:
    """The alerts of one EVE file and what else it held.

    Attributes
    ----------
    alerts : tuple of Alert
        The ``event_type == "alert"`` lines, in file order.
    skipped : dict of str to int
        Lines of other event types (``stats``, ``flow``, ...; ``"?"`` when the line has
        no ``event_type``), by type.
    path : str
        The file they came from.
    """

    alerts: tuple[Alert, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def __iter__(self) -> Iterator[Alert]:
        return iter(self.alerts)

    def __len__(self) -> int:
        return len(self.alerts)

    @property
    def skipped_lines(self) -> int:
        """Number of non-alert event lines."""
        return sum(self.skipped.values())


@dataclass(frozen=True)
class AttackResult:
    """How one attack of the timeline showed up in the alerts.

    Attributes
    ----------
    attack : str
        The attack's class name, as in the timeline.
    detected : bool
        At least one alert fell in ``[start - 1, end + grace]``.
    attributed : bool
        At least one of those alerts has one of the attackers as ``src_ip``.
    first_s : float or None
        Seconds from ``start`` to the first alert (negative when it came in the second
        before ``start``), rounded to 0.01 s; ``None`` when not detected.
    named : bool
        The majority family equals the attack's family.
    majority : str or None
        The family with most alerts (by ``alert.count``); ``None`` when not detected.
    alerts : int
        Alerts in the interval (by ``alert.count``).
    categories : list of str
        The distinct categories of those alerts, sorted (``"None"`` for a missing one).
    first_alert_src : str or None
        ``src_ip`` of the first alert in the interval (not in the reference's output).
    attributed_alerts : int
        Alerts (by ``alert.count``) whose ``src_ip`` is an attacker (not in the reference's output).
    """

    attack: str
    detected: bool
    attributed: bool
    first_s: float | None
    named: bool
    majority: str | None
    alerts: int
    categories: list[str]
    first_alert_src: str | None = None
    attributed_alerts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The reference's ``per_attack`` entry: same keys, same order."""
        return {
            "attack": self.attack,
            "detected": self.detected,
            "attributed": self.attributed,
            "first_s": self.first_s,
            "named": self.named,
            "majority": self.majority,
            "alerts": self.alerts,
            "categories": list(self.categories),
        }


@dataclass(frozen=True)
class TimelineScore:
    """False alerts per hour of benign time, and how each attack was seen.

    Attributes
    ----------
    false_alerts : int
        Alerts (by ``alert.count``) outside every attack interval.
    false_alert_lines : int
        Alert lines outside every attack interval.
    benign_s : float
        Benign seconds (see the module docstring for how overlaps count).
    per_attack : list of AttackResult
        One result per timeline entry, in timeline order.
    grace : float
        Seconds after each attack's end during which alerts still count for it.
    alert_lines : int
        Alert lines scored (not in the reference's output).
    """

    false_alerts: int
    false_alert_lines: int
    benign_s: float
    per_attack: list[AttackResult]
    grace: float = 10.0
    alert_lines: int = 0

    @property
    def benign_hours(self) -> float:
        """Benign time in hours (unrounded)."""
        return self.benign_s / 3600

    @property
    def false_alerts_per_hour(self) -> float:
        """False alerts per hour of benign time, rounded to 0.1 like the reference."""
        return round(self.false_alerts / self.benign_hours, 1)

    @property
    def false_alert_lines_per_hour(self) -> float:
        """False alert lines per hour of benign time, rounded to 0.1 like the reference."""
        return round(self.false_alert_lines / self.benign_hours, 1)

    @property
    def attacks(self) -> int:
        """Number of attacks in the timeline."""
        return len(self.per_attack)

    @property
    def attacks_detected(self) -> int:
        """Attacks with at least one alert in their interval."""
        return sum(r.detected for r in self.per_attack)

    @property
    def attacks_attributed(self) -> int:
        """Attacks with an alert from one of their attackers."""
        return sum(r.attributed for r in self.per_attack)

    @property
    def attacks_named(self) -> int:
        """Attacks whose majority family is their own."""
        return sum(r.named for r in self.per_attack)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the reference script's ``--json`` object (keys, order and rounding)."""
        return {
            "false_alert_lines_per_hour": self.false_alert_lines_per_hour,
            "benign_hours": round(self.benign_hours, 4),
            "false_alerts": self.false_alerts,
            "false_alert_lines": self.false_alert_lines,
            "false_alerts_per_hour": self.false_alerts_per_hour,
            "attacks_detected": self.attacks_detected,
            "attacks_attributed": self.attacks_attributed,
            "attacks_named": self.attacks_named,
            "attacks": self.attacks,
            "per_attack": [r.to_dict() for r in self.per_attack],
        }


# --------------------------------------------------------------------------- loading


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} file {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise DataError(f"{what} file {str(path)!r} is a directory, not a file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} file {str(path)!r} cannot be read: {exc}") from None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def load_timeline(path: str | Path) -> list[Attack]:
    """Read a timeline: a JSON list of ``{"attack", "start", "end", "attackers"}`` objects.

    Parameters
    ----------
    path : str or Path
        The timeline JSON file.

    Returns
    -------
    list of Attack
        In file order.

    Raises
    ------
    DataError
        The file is missing or not JSON.
    SchemaError
        Not a list of objects, or an entry lacks ``attack``, ``start``, ``end`` or ``attackers``.
    BadValueError
        A field has the wrong type, a time is not a finite number, or ``end < start``.
    """
    p = Path(path)
    text = _read_text(p, "timeline")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"timeline {str(p)!r}: not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    if not isinstance(data, list):
        raise SchemaError(
            f"timeline {str(p)!r}: expected a JSON list of attacks; got {type(data).__name__} instead."
        )
    attacks = []
    for i, x in enumerate(data):
        where = f"timeline {str(p)!r}, entry {i}"
        if not isinstance(x, dict):
            raise SchemaError(f"{where}: expected an object; got {type(x).__name__} instead.")
        missing = [k for k in ("attack", "start", "end", "attackers") if k not in x]
        if missing:
            raise SchemaError(f"{where}: missing field(s) {missing}; has {sorted(x)}.")
        if not isinstance(x["attack"], str) or not x["attack"].strip():
            raise BadValueError(f"{where}: 'attack' must be a non-empty class name; got {x['attack']!r}.")
        for k in ("start", "end"):
            if not _is_number(x[k]):
                raise BadValueError(f"{where}: {k!r} must be a finite number (Unix seconds); got {x[k]!r}.")
        if x["end"] < x["start"]:
            raise BadValueError(f"{where}: 'end' ({x['end']!r}) is before 'start' ({x['start']!r}).")
        atk = x["attackers"]
        if not isinstance(atk, list) or not all(isinstance(a, str) for a in atk):
            raise BadValueError(f"{where}: 'attackers' must be a list of IP address strings; got {atk!r}.")
        attacks.append(Attack(x["attack"], x["start"], x["end"], tuple(atk)))
    return attacks


def parse_timestamp(ts: Any) -> float:
    """Unix seconds of an EVE ``timestamp``; it must carry a UTC offset.

    Accepts Suricata's ``2026-12-01T10:00:00.123456+0000`` as well as ``+00:00`` and ``Z``
    (Python >= 3.11's ``fromisoformat`` reads all three).

    Raises
    ------
    BadValueError
        (a ValueError) Not a string, not ISO 8601, or no UTC offset (a naive time would be read as local time).

    Examples
    --------
    >>> parse_timestamp("1970-01-01T00:00:01.5+0000"), parse_timestamp("1970-01-01T01:00:00+01:00")
    (1.5, 0.0)
    """
    if not isinstance(ts, str):
        raise BadValueError(f"expected an ISO 8601 string; got {ts!r}")
    try:
        t = dt.datetime.fromisoformat(ts)
    except ValueError:
        raise BadValueError(
            f"{ts!r} is not an ISO 8601 time (expected e.g. '2026-12-01T10:00:00.5+0000')"
        ) from None
    if t.tzinfo is None:
        raise BadValueError(f"{ts!r} has no UTC offset (expected e.g. '+0000' or 'Z')")
    return t.timestamp()


def _optional_str(e: dict[str, Any], key: str, where: str) -> str | None:
    v = e.get(key)
    if v is not None and not isinstance(v, str):
        raise BadValueError(f"{where}: {key!r} must be a string or null; got {v!r}.")
    return v


def _count(v: Any, where: str) -> int:
    # the reference's int(count or 1): absent, null and 0 all mean one alert
    if v is None or (v == 0 and not isinstance(v, bool)):
        return 1
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise BadValueError(f"{where}: 'alert.count' must be a positive integer; got {v!r}.")
    return v


def load_alerts(path: str | Path) -> AlertLog:
    """Read the alerts of an EVE JSON-lines file.

    Blank lines are ignored; lines whose ``event_type`` is not ``"alert"`` are counted in
    :attr:`AlertLog.skipped` and otherwise ignored.

    Parameters
    ----------
    path : str or Path
        The EVE file (``eve.json``, or ``iomt-ids detect --alerts``'s output).

    Returns
    -------
    AlertLog

    Raises
    ------
    DataError
        The file is missing, or a line is not JSON (the message names the line).
    SchemaError
        A line is not an object, or an alert lacks ``timestamp`` or ``alert``.
    BadValueError
        A bad ``timestamp``, ``src_ip``/``dest_ip``/``alert.category`` not a string, or a bad
        ``alert.count``.
    """
    p = Path(path)
    text = _read_text(p, "alerts")
    alerts: list[Alert] = []
    skipped: Counter[str] = Counter()
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"alerts {str(p)!r}, line {n}"
        try:
            e = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(e, dict):
            raise SchemaError(f"{where}: expected a JSON object; got {type(e).__name__} instead.")
        etype = e.get("event_type")
        if etype != "alert":
            skipped[str(etype) if etype is not None else "?"] += 1
            continue
        for k in ("timestamp", "alert"):
            if k not in e:
                raise SchemaError(f"{where}: an alert event without {k!r}.")
        try:
            ts = parse_timestamp(e["timestamp"])
        except ValueError as exc:
            raise BadValueError(f"{where}: bad 'timestamp': {exc}.") from None
        body = e["alert"]
        if not isinstance(body, dict):
            raise BadValueError(f"{where}: 'alert' must be an object; got {body!r}.")
        alerts.append(
            Alert(
                timestamp=ts,
                src_ip=_optional_str(e, "src_ip", where),
                dest_ip=_optional_str(e, "dest_ip", where),
                count=_count(body.get("count"), where),
                category=_optional_str(body, "category", f"{where}, 'alert'"),
                line=n,
            )
        )
    if skipped:
        log.debug("%s: skipped non-alert lines %s", p, dict(skipped))
    return AlertLog(tuple(alerts), dict(sorted(skipped.items())), str(p))


# --------------------------------------------------------------------------- scoring


def score_timeline(attacks: Sequence[Attack], alerts: Iterable[Alert], grace: float = 10.0) -> TimelineScore:
    """Score alerts against a timeline of attacks.

    Parameters
    ----------
    attacks : sequence of Attack
        The timeline (:func:`load_timeline`).
    alerts : iterable of Alert
        The alerts, in any order (:func:`load_alerts` gives an :class:`AlertLog`).
    grace : float, default 10.0
        Seconds after an attack's end during which alerts still belong to it.

    Returns
    -------
    TimelineScore

    Raises
    ------
    ConfigError
        ``grace`` is negative or not finite.
    DataError
        Nothing to score (no attacks and no alerts), or no benign time at all.
    """
    if not _is_number(grace) or grace < 0:
        raise ConfigError(f"grace must be a finite number of seconds >= 0; got {grace!r} instead.")
    ordered = sorted(alerts, key=Alert.sort_key)
    if not attacks and not ordered:
        raise DataError("nothing to score: the timeline has no attacks and there are no alerts.")

    def inside(t: float, x: Attack) -> bool:
        return x.start - 1 <= t <= x.end + grace

    # the same expressions as the reference, in the same order, so floats round alike
    t_first = min([x.start for x in attacks] + [a.timestamp for a in ordered[:1]]) - LEAD_IN_S
    t_last = max([x.end for x in attacks] + [a.timestamp for a in ordered[-1:]]) + TAIL_S
    benign_s = (t_last - t_first) - sum(x.end + grace - x.start + 1 for x in attacks)
    if benign_s == 0:
        raise DataError("no benign time: the attack intervals cover the whole observed span.")
    if benign_s < 0:
        log.warning("benign time is negative (%.0f s): overlapping attack intervals count twice", benign_s)

    false = [a for a in ordered if not any(inside(a.timestamp, x) for x in attacks)]
    rows = [_score_attack(x, [a for a in ordered if inside(a.timestamp, x)]) for x in attacks]
    return TimelineScore(
        false_alerts=sum(a.count for a in false),
        false_alert_lines=len(false),
        benign_s=benign_s,
        per_attack=rows,
        grace=grace,
        alert_lines=len(ordered),
    )


def _score_attack(x: Attack, hit: list[Alert]) -> AttackResult:
    """One attack's result from the alerts inside its interval (already in sort order)."""
    attackers = set(x.attackers)
    votes: dict[str, int] = {}
    for a in hit:
        votes[family(a.category)] = votes.get(family(a.category), 0) + a.count
    # max() keeps the first of equal counts: the family seen first in alert order wins a tie
    majority = max(votes, key=lambda f: votes[f]) if votes else None
    return AttackResult(
        attack=x.attack,
        detected=bool(hit),
        attributed=any(a.src_ip in attackers for a in hit),
        first_s=round(hit[0].timestamp - x.start, 2) if hit else None,
        named=majority == family(x.attack),
        majority=majority,
        alerts=sum(a.count for a in hit),
        categories=sorted({str(a.category) for a in hit}),
        first_alert_src=hit[0].src_ip if hit else None,
        attributed_alerts=sum(a.count for a in hit if a.src_ip in attackers),
    )
