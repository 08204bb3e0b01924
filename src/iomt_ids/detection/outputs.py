"""Network alert outputs for SIEM ingestion: syslog (RFC 5424) and redis, behind a bounded queue.

:func:`open_sink` turns an ``--alerts`` spec into a sink:

* a path: JSON lines appended to that file (:class:`~iomt_ids.detection.alerts.JsonLinesSink`);
* ``-``: JSON lines on stdout (:class:`~iomt_ids.detection.alerts.StreamSink`);
* ``syslog`` or ``syslog://[HOST[:PORT]][?facility=local5&ident=iomt-ids&socket=/dev/log]``:
  each EVE line as one RFC 5424 message, to the local syslog socket (Unix datagram,
  default ``/dev/log``) or, with a HOST, over UDP (default port 514), as Suricata's EVE
  syslog output does (:class:`SyslogSink`);
* ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?key=suricata&mode=list]``: each EVE line
  LPUSHed to a list (``mode=list``, the default, or ``lpush``; ``rpush`` appends) or
  PUBLISHed on a channel (``mode=channel`` or ``publish``), as Suricata's EVE redis
  output does, the usual way into Logstash (:class:`RedisSink`).

The network sinks never block the capture: :func:`open_sink` wraps them in a
:class:`QueuedSink`, a bounded queue drained by a background thread. ``emit`` never
waits: when the queue is full the line is dropped and counted. When the server goes
away the thread reconnects with exponential backoff (0.1 s doubling up to 5 s) while
new lines queue up (and then drop); a line whose send failed is retried after the
reconnect (at least once delivery; a line that fails ``max_attempts`` sends is dropped).
``close()`` sends what is queued for at most ``close_timeout`` seconds (5 s) and counts
the rest as dropped, with a warning. The counters ``sent``, ``dropped``, ``errors``
and ``reconnects`` are attributes of the :class:`QueuedSink`, and :meth:`QueuedSink.describe`
gives them as summary rows (``iomt-ids detect`` prints them).

Syslog severity of an alert line (RFC 5424 severities: 1 alert, 2 critical, 4 warning,
6 informational), from ``alert.severity`` (see :data:`SYSLOG_SEVERITY_BY_ALERT_SEVERITY`):

* 1 -> 1 ``alert``: DDoS and ARP spoofing can take a medical device off line or put an
  attacker on the path of vital-sign traffic; action must be taken at once.
* 2 -> 2 ``critical``: single-source floods, MQTT abuse, unknown attack kind, anomaly.
* 3 -> 4 ``warning``: reconnaissance, a precursor of an attack.
* ``stats`` lines -> 6 ``informational``.

PRI is ``facility * 8 + severity`` (RFC 5424 §6.2.1); the default facility is
``local5`` (21), as Suricata's.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from iomt_ids.detection.alerts import Alert, AlertSink, JsonLinesSink, StreamSink
from iomt_ids.exceptions import ConfigError

__all__ = [
    "SYSLOG_FACILITIES",
    "SYSLOG_SEVERITY_BY_ALERT_SEVERITY",
    "QueuedSink",
    "RedisSink",
    "SyslogSink",
    "open_sink",
    "rfc5424_message",
]

logger = logging.getLogger(__name__)

#: RFC 5424 facility names -> codes.
SYSLOG_FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
#: ``alert.severity`` (1 most severe .. 3) -> RFC 5424 severity (see the module docstring).
SYSLOG_SEVERITY_BY_ALERT_SEVERITY: dict[int, int] = {1: 1, 2: 2, 3: 4}
#: RFC 5424 severity of an alert with a severity outside 1..3 (warning) and of other events (informational).
SYSLOG_DEFAULT_ALERT_SEVERITY = 4
SYSLOG_EVENT_SEVERITY = 6

_REDIS_MODES = {
    "list": "lpush",
    "lpush": "lpush",
    "rpush": "rpush",
    "channel": "publish",
    "publish": "publish",
}


class _FrozenEvent:
    """A non-alert event serialised when it was emitted (a ``StatsEvent`` reads a live summary)."""

    __slots__ = ("line",)

    def __init__(self, line: str) -> None:
        self.line = line

    def to_json(self) -> str:
        return self.line


def _line_and_severity(item: Any) -> tuple[str, int, str]:
    """(JSON line, RFC 5424 severity, MSGID) of an alert or an event."""
    if isinstance(item, Alert):
        sev = SYSLOG_SEVERITY_BY_ALERT_SEVERITY.get(item.severity, SYSLOG_DEFAULT_ALERT_SEVERITY)
        return item.to_json(), sev, "alert"
    line = item.to_json()
    msgid = "stats" if '"event_type":"stats"' in line else "event"
    return line, SYSLOG_EVENT_SEVERITY, msgid


def _printable(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit`` characters, or ``-``."""
    out = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


def rfc5424_message(
    msg: str,
    *,
    facility: int,
    severity: int,
    app_name: str = "iomt-ids",
    msgid: str = "-",
    hostname: str | None = None,
    procid: int | None = None,
    timestamp: float | None = None,
) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG``.

    Parameters
    ----------
    msg : str
        The MSG part (here an EVE JSON line; pure ASCII, so no BOM is written).
    facility, severity : int
        PRI is ``facility * 8 + severity``.
    app_name, msgid : str
        Header fields (printable ASCII, at most 48 and 32 characters).
    hostname : str, optional
        Default :func:`socket.gethostname`.
    procid : int, optional
        Default this process's id.
    timestamp : float, optional
        Epoch seconds of the message; default now. Written in UTC with microseconds.

    Returns
    -------
    bytes

    Examples
    --------
    >>> rfc5424_message('{"a":1}', facility=21, severity=1, hostname="h", procid=7, timestamp=0.0)
    b'<169>1 1970-01-01T00:00:00.000000Z h iomt-ids 7 - - {"a":1}'
    """
    ts = _dt.datetime.fromtimestamp(time.time() if timestamp is None else timestamp, _dt.UTC)
    header = "<{}>1 {} {} {} {} {} -".format(
        facility * 8 + severity,
        ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        _printable(hostname if hostname is not None else socket.gethostname(), 255),
        _printable(app_name, 48),
        _printable(str(os.getpid() if procid is None else procid), 128),
        _printable(msgid, 32),
    )
    return (header + " " + msg).encode("utf-8")


class _NetworkSink:
    """What the network sinks share: stats lines go the same way as alerts, nothing to flush
    (each line is sent at once), and closing drops the connection (``disconnect``)."""

    def emit(self, alert: Any) -> None:  # pragma: no cover - each sink defines it
        raise NotImplementedError

    def disconnect(self) -> None:  # pragma: no cover - each sink defines it
        raise NotImplementedError

    def emit_event(self, event: Any) -> None:
        self.emit(event)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.disconnect()


class SyslogSink(_NetworkSink):
    """Send each EVE line as one RFC 5424 message to a syslog socket (no queue: wrap it in :class:`QueuedSink`).

    Parameters
    ----------
    socket_path : str, default "/dev/log"
        Local syslog socket (Unix datagram); ignored when ``host`` is given.
    host : str, optional
        Send over UDP to this host instead.
    port : int, default 514
        UDP port.
    facility : int, default 21 (local5)
    ident : str, default "iomt-ids"
        APP-NAME of the messages.
    timeout : float, default 5.0
        Seconds a send may wait (a full ``/dev/log`` blocks its writers).
    """

    def __init__(
        self,
        socket_path: str = "/dev/log",
        *,
        host: str | None = None,
        port: int = 514,
        facility: int = SYSLOG_FACILITIES["local5"],
        ident: str = "iomt-ids",
        timeout: float = 5.0,
    ) -> None:
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self.facility = facility
        self.ident = ident
        self.timeout = timeout
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    @property
    def target(self) -> str:
        return f"syslog udp {self.host}:{self.port}" if self.host else f"syslog {self.socket_path}"

    def connect(self) -> None:
        """Open the socket (raises ``OSError`` when the receiver is not there)."""
        self.disconnect()
        if self.host:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
            addr: Any = (self.host, self.port)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            addr = self.socket_path
        sock.settimeout(self.timeout)
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def emit(self, alert: Any) -> None:
        line, severity, msgid = _line_and_severity(alert)
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        self._sock.send(
            rfc5424_message(
                line, facility=self.facility, severity=severity, app_name=self.ident, msgid=msgid,
                hostname=self.hostname,
            )
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"SyslogSink({self.target!r}, facility={self.facility}, ident={self.ident!r})"


class RedisSink(_NetworkSink):
    """LPUSH/RPUSH each EVE line to a redis list, or PUBLISH it on a channel (no queue: see :class:`QueuedSink`).

    Parameters
    ----------
    host : str, default "127.0.0.1"
    port : int, default 6379
    db : int, default 0
    key : str, default "suricata"
        The list or channel name (Suricata's default key).
    mode : {"lpush", "rpush", "publish"}, default "lpush"
    username, password : str, optional
    timeout : float, default 5.0
        Connect and command timeout in seconds.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        key: str = "suricata",
        mode: str = "lpush",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if mode not in ("lpush", "rpush", "publish"):
            raise ConfigError(f"redis sink: mode must be lpush, rpush or publish; got {mode!r} instead.")
        self.host, self.port, self.db = host, port, db
        self.key, self.mode = key, mode
        self.username, self.password = username, password
        self.timeout = timeout
        self._client: Any = None

    @property
    def target(self) -> str:
        what = "channel" if self.mode == "publish" else f"list ({self.mode})"
        return f"redis://{self.host}:{self.port}/{self.db} {what} {self.key}"

    def connect(self) -> None:
        """Connect and PING (raises ``redis.exceptions.ConnectionError`` when the server is not there)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.disconnect()
        client = redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username,
            password=self.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),  # QueuedSink retries with its own backoff
        )
        try:
            client.ping()
        except Exception:
            client.close()
            raise
        self._client = client

    def disconnect(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass
            finally:
                self._client = None

    def emit(self, alert: Any) -> None:
        line = alert.to_json()
        if self._client is None:
            self.connect()
        getattr(self._client, self.mode)(self.key, line)

    def __repr__(self) -> str:
        return f"RedisSink({self.target!r})"


class QueuedSink:
    """Put a sink behind a bounded queue drained by a background thread, so that it never blocks the caller.

    Parameters
    ----------
    inner : sink
        Has ``emit`` (and ``emit_event`` for ``stats`` lines); may have ``connect()``
        and ``disconnect()``, which are called to (re)connect after a failure.
    maxsize : int, default 10000
        Lines queued at most; ``emit`` drops (and counts) a line when the queue is full.
    close_timeout : float, default 5.0
        Seconds ``close()`` spends sending what is queued; the rest is dropped.
    backoff_initial, backoff_max : float, default 0.1 and 5.0
        Reconnect delays: the first, doubled after each failed attempt up to the max.
    max_attempts : int, default 3
        Sends of one line (each after a successful (re)connect) before it is dropped.
    name : str, optional
        How the summary names the output; default the inner sink's ``target``.

    Attributes
    ----------
    sent : int
        Lines the inner sink took.
    dropped : int
        Lines lost: queue full, ``max_attempts`` failed sends, or still queued at close.
    dropped_at_close : int
        Of ``dropped``, lines still queued when ``close_timeout`` ran out.
    errors : int
        Failed sends and failed (re)connects.
    reconnects : int
        Successful connects after a failure.
    """

    def __init__(
        self,
        inner: Any,
        maxsize: int = 10_000,
        *,
        close_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_attempts: int = 3,
        name: str | None = None,
    ) -> None:
        if maxsize < 1:
            raise ConfigError(f"queued sink: maxsize must be >= 1; got {maxsize!r} instead.")
        self.inner = inner
        self.maxsize = maxsize
        self.close_timeout = close_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_attempts = max(1, int(max_attempts))
        self.name = name or str(getattr(inner, "target", type(inner).__name__))
        self.sent = 0
        self.dropped = 0
        self.dropped_at_close = 0
        self.errors = 0
        self.reconnects = 0
        self.last_error = ""
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._closing = threading.Event()  # close() called: drain, no long backoff
        self._abort = threading.Event()  # close timeout: stop sending
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"iomt-ids sink {self.name}", daemon=True)
        self._thread.start()

    # -- caller side (never blocks) --------------------------------------------------------------

    def _put(self, kind: str, item: Any) -> None:
        if self._closed:
            self._count_dropped(1)
            return
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            self._count_dropped(1)

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def emit(self, alert: Alert) -> None:
        """Queue an alert; drop and count it when the queue is full."""
        self._put("alert", alert)

    def emit_event(self, event: Any) -> None:
        """Queue a non-alert event (``stats``), serialised now (it reads a live summary)."""
        self._put("event", _FrozenEvent(event.to_json()))

    def flush(self) -> None:
        """Do nothing: the thread sends as fast as it can; :meth:`close` waits for the queue."""
        return None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Send what is queued within ``close_timeout`` seconds, then drop (and count) the rest."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._thread.join(self.close_timeout)
        if self._thread.is_alive():
            self._abort.set()
            left = 0
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                left += 1
            with self._lock:
                self.dropped += left
                self.dropped_at_close += left
            if left:
                logger.warning(
                    "%s: %d line(s) still queued after %.1f s at close were dropped%s",
                    self.name,
                    left,
                    self.close_timeout,
                    f" (last error: {self.last_error})" if self.last_error else "",
                )
            self._thread.join(0.5)

    # -- background thread -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the sink is aborting."""
        return not self._abort.wait(seconds)

    def _run(self) -> None:
        connect: Callable[[], None] | None = getattr(self.inner, "connect", None)
        disconnect: Callable[[], None] | None = getattr(self.inner, "disconnect", None)
        connected = connect is None
        failed = False  # a failure since the last successful connect
        delay = self.backoff_initial
        try:
            while not self._abort.is_set():
                try:
                    kind, item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._closing.is_set():
                        return
                    continue
                attempts = 0
                while True:
                    if self._abort.is_set():
                        self._count_dropped(1)
                        break
                    if not connected:
                        assert connect is not None
                        try:
                            connect()
                        except Exception as exc:  # noqa: BLE001 - any failure: retry later
                            self._error(exc, "connect")
                            failed = True
                            # while closing, keep retrying quickly until close_timeout ends it
                            self._wait(min(delay, 0.2) if self._closing.is_set() else delay)
                            delay = min(delay * 2, self.backoff_max)
                            continue
                        connected = True
                        delay = self.backoff_initial
                        if failed:
                            with self._lock:
                                self.reconnects += 1
                            logger.info("%s: reconnected", self.name)
                            failed = False
                    try:
                        if kind == "alert":
                            self.inner.emit(item)
                        else:
                            (getattr(self.inner, "emit_event", None) or self.inner.emit)(item)
                    except Exception as exc:  # noqa: BLE001
                        attempts += 1
                        self._error(exc, "send")
                        failed = True
                        if disconnect is not None:
                            try:
                                disconnect()
                            except Exception:  # noqa: BLE001
                                pass
                            connected = False
                        if attempts >= self.max_attempts:
                            self._count_dropped(1)
                            break
                        if connect is None and not self._wait(
                            min(delay, 0.2) if self._closing.is_set() else delay
                        ):
                            self._count_dropped(1)
                            break
                        continue
                    with self._lock:
                        self.sent += 1
                    break
        finally:
            close = getattr(self.inner, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    logger.warning("%s: close failed: %s", self.name, exc)

    def _error(self, exc: BaseException, what: str) -> None:
        with self._lock:
            first = not self.last_error
            self.errors += 1
            self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if first or self.errors in (1, 10, 100) or self.errors % 1000 == 0:
            logger.warning(
                "%s: %s failed (%s); retrying with backoff, up to %d lines queue meanwhile (%d errors so far)",
                self.name, what, exc, self.maxsize, self.errors,
            )  # fmt: skip

    # -- summary -----------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The counters: ``sent``, ``dropped``, ``dropped_at_close``, ``errors``, ``reconnects``, ``queued``."""
        with self._lock:
            return {
                "sent": self.sent,
                "dropped": self.dropped,
                "dropped_at_close": self.dropped_at_close,
                "errors": self.errors,
                "reconnects": self.reconnects,
                "queued": self.queued,
            }

    def describe(self) -> list[tuple[str, str]]:
        """Summary rows ``(what, value)`` for ``iomt-ids detect``."""
        s = self.stats()
        value = f"sent {s['sent']:,}, dropped {s['dropped']:,}, errors {s['errors']:,}, reconnects {s['reconnects']:,}"
        rows = [("alerts output", self.name), ("  lines", value)]
        if s["dropped_at_close"]:
            rows.append(
                (
                    "  dropped at close",
                    f"{s['dropped_at_close']:,} (still queued after {self.close_timeout:g} s)",
                )
            )
        if self.last_error:
            rows.append(("  last error", self.last_error))
        return rows

    def __repr__(self) -> str:
        return f"QueuedSink({self.inner!r}, maxsize={self.maxsize})"


# -- specs ---------------------------------------------------------------------------------------


def _query(spec: str, query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(
            f"alerts output {spec!r}: cannot parse the query {query!r}; expected NAME=VALUE&..."
        ) from None
    for k, v in pairs:
        if k not in allowed:
            raise ConfigError(
                f"alerts output {spec!r}: unknown query field {k!r}; expected one of {', '.join(allowed)}."
            )
        if k in out:
            raise ConfigError(f"alerts output {spec!r}: query field {k!r} given twice.")
        if not v:
            raise ConfigError(f"alerts output {spec!r}: query field {k!r} is empty.")
        out[k] = v
    return out


def _port(spec: str, parts: Any, default: int) -> int:
    try:
        port = parts.port
    except ValueError:
        netloc = parts.netloc.rsplit("@", 1)[-1]
        raise ConfigError(
            f"alerts output {spec!r}: bad port in {netloc!r}; expected HOST:PORT with PORT an integer 1..65535."
        ) from None
    if port is None:
        return default
    if not 1 <= port <= 65535:
        raise ConfigError(f"alerts output {spec!r}: port {port} is out of range; expected 1..65535.")
    return int(port)


def _syslog_sink(spec: str) -> SyslogSink:
    rest = spec[len("syslog") :]
    if rest not in ("", ":") and not rest.startswith(("://", ":?", "?")):
        raise ConfigError(
            f"alerts output {spec!r}: expected 'syslog', 'syslog://?facility=local5&ident=iomt-ids&socket=/dev/log' "
            "or 'syslog://HOST:PORT'."
        )
    parts = urlsplit(
        "syslog://" + rest.removeprefix("://").removeprefix(":").lstrip("/") if rest else "syslog://"
    )
    if parts.path not in ("", "/"):
        raise ConfigError(
            f"alerts output {spec!r}: unexpected path {parts.path!r}; expected syslog://[HOST[:PORT]][?...]."
        )
    q = _query(spec, parts.query, ("facility", "ident", "socket"))
    fac_name = q.get("facility", "local5").lower()
    if fac_name.isdigit() and int(fac_name) <= 23:
        facility = int(fac_name)
    elif fac_name in SYSLOG_FACILITIES:
        facility = SYSLOG_FACILITIES[fac_name]
    else:
        raise ConfigError(
            f"alerts output {spec!r}: unknown facility {q['facility']!r}; expected one of "
            f"{', '.join(SYSLOG_FACILITIES)} (or 0..23)."
        )
    ident = q.get("ident", "iomt-ids")
    if _printable(ident, 48) != ident:
        raise ConfigError(
            f"alerts output {spec!r}: ident {ident!r} must be 1..48 printable ASCII characters without spaces."
        )
    host = parts.hostname
    if host and "socket" in q:
        raise ConfigError(f"alerts output {spec!r}: give either a HOST (UDP) or socket= (local), not both.")
    port = _port(spec, parts, 514)
    if not host and parts.port is not None:
        raise ConfigError(f"alerts output {spec!r}: a port needs a HOST; expected syslog://HOST:PORT.")
    return SyslogSink(
        q.get("socket", "/dev/log"), host=host or None, port=port, facility=facility, ident=ident
    )


def _redis_sink(spec: str) -> RedisSink:
    parts = urlsplit(spec)
    if parts.fragment:
        raise ConfigError(f"alerts output {spec!r}: unexpected fragment '#{parts.fragment}'.")
    port = _port(spec, parts, 6379)
    path = parts.path.strip("/")
    if not path:
        db = 0
    elif path.isdigit():
        db = int(path)
    else:
        raise ConfigError(
            f"alerts output {spec!r}: bad database {path!r}; expected redis://HOST:PORT/DB with DB an integer >= 0."
        )
    q = _query(spec, parts.query, ("key", "mode"))
    mode = q.get("mode", "list").lower()
    if mode not in _REDIS_MODES:
        raise ConfigError(
            f"alerts output {spec!r}: unknown mode {q['mode']!r}; expected list (LPUSH, the default), rpush or channel."
        )
    return RedisSink(
        parts.hostname or "127.0.0.1",
        port,
        db,
        key=q.get("key", "suricata"),
        mode=_REDIS_MODES[mode],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def open_sink(
    spec: str | os.PathLike[str], *, queue_size: int = 10_000, close_timeout: float = 5.0
) -> AlertSink:
    """Open an ``--alerts`` output: a path, ``-``, ``syslog[://...]`` or ``redis://...`` (see the module docstring).

    Parameters
    ----------
    spec : str or os.PathLike
        The output.
    queue_size : int, default 10000
        Queue of a network output (:class:`QueuedSink`).
    close_timeout : float, default 5.0
        Seconds a network output's ``close()`` spends sending what is queued.

    Returns
    -------
    AlertSink
        A :class:`JsonLinesSink`, a :class:`StreamSink`, or a :class:`QueuedSink` around a
        :class:`SyslogSink` or :class:`RedisSink` (nothing is connected yet: an unreachable
        server is retried in the background, never an error here).

    Raises
    ------
    ConfigError
        A malformed network spec (it names the spec and what was expected), or a file that cannot be opened.

    Examples
    --------
    >>> sink = open_sink("redis://127.0.0.1:6379/0?key=eve")
    >>> sink.name
    'redis://127.0.0.1:6379/0 list (lpush) eve'
    >>> sink.close()
    """
    if not isinstance(spec, str):
        return JsonLinesSink(spec)
    if spec == "-":
        return StreamSink()
    low = spec.lower()
    inner: Any
    if low == "syslog" or low.startswith(("syslog:", "syslog?")):
        inner = _syslog_sink("syslog" + spec[len("syslog") :])
    elif low.startswith("redis:"):
        if not low.startswith("redis://"):
            raise ConfigError(
                f"alerts output {spec!r}: expected redis://HOST:PORT/DB?key=NAME&mode=list|channel."
            )
        inner = _redis_sink(spec)
    elif "://" in spec:
        raise ConfigError(
            f"alerts output {spec!r}: unknown scheme {spec.split('://', 1)[0]!r}; expected a file path, '-', "
            "syslog[://...] or redis://..."
        )
    else:
        return JsonLinesSink(spec)
    return QueuedSink(inner, queue_size, close_timeout=close_timeout)
