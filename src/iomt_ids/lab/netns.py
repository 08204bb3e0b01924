"""Network namespaces for the lab: build, run processes inside, check isolation, tear down.

Layout: one *hub* namespace holds a bridge ``br0``; every lab host gets its own
namespace with one veth ``eth0`` whose peer is a port of ``br0``. Both veth ends are
created directly inside lab namespaces, so no lab interface ever exists in the host
namespace. No namespace has a default route, IP forwarding is off, IPv6 is off, and
the host namespace gets no address or route in the lab subnet: lab packets cannot
leave the namespaces.

:class:`Lab` is a context manager. Leaving it, normally or through an exception,
stops every process it started (by process group, then any process still inside
its namespaces) and deletes its namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from iomt_ids.exceptions import CaptureError, ConfigError
from iomt_ids.lab.topology import LabHost, Topology, check_lab_target, find_ip_literals

__all__ = [
    "NS_PREFIX",
    "TOOL_PACKAGES",
    "Lab",
    "check_environment",
    "clean_stale_namespaces",
    "host_isolation_problems",
    "lab_namespaces",
]

logger = logging.getLogger(__name__)

#: Every lab namespace name starts with this.
NS_PREFIX = "iomtlab"
#: Command -> Debian package that provides it.
TOOL_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "tcpdump": "tcpdump",
    "hping3": "hping3",
    "nmap": "nmap",
    "mosquitto": "mosquitto",
    "arpspoof": "dsniff",
    "openssl": "openssl",
}
HUB = "hub"
BRIDGE = "br0"


def check_environment(tools: tuple[str, ...] | list[str] = ("ip", "tcpdump")) -> None:
    """Raise a clear error unless running as root with ``tools`` on PATH.

    Raises
    ------
    CaptureError
        Not root, or a tool is missing (the message names its Debian package).
    """
    if os.geteuid() != 0:
        raise CaptureError(
            "the traffic lab needs root (network namespaces, raw sockets); run it as root, "
            f"e.g. `sudo iomt-ids lab run ...`. Running as uid {os.geteuid()} instead."
        )
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise CaptureError(
            f"lab tools not found on PATH: {', '.join(missing)}; install them with "
            f"`apt-get install -y {' '.join(pkgs)}`."
        )


def _ip_json(args: list[str]) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise CaptureError(f"`ip -j {' '.join(args)}` failed: {out.stderr.strip()}")
    return json.loads(out.stdout or "[]")


def lab_namespaces() -> list[str]:
    """Return the names of every lab namespace that exists now (any run)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(NS_PREFIX + "-")]


def _kill_and_delete(ns: str) -> bool:
    """SIGKILL every process left in namespace ``ns``, then delete it; True when it was deleted."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for pid in out.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    return subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False).returncode == 0


def clean_stale_namespaces(run_id: str | None = None) -> list[str]:
    """Kill the processes in, and delete, the lab namespaces left by a killed run.

    Only namespaces named ``iomtlab-...`` are touched; with ``run_id``, only those of
    that run (``iomtlab-<run_id>-...``). Returns the namespaces deleted.
    """
    removed = []
    prefix = f"{NS_PREFIX}-{run_id}-" if run_id else f"{NS_PREFIX}-"
    for ns in (n for n in lab_namespaces() if n.startswith(prefix)):
        if _kill_and_delete(ns):
            removed.append(ns)
    return removed


def _overlaps(dst: str, subnet: ipaddress.IPv4Network) -> bool:
    if dst == "default":
        return False
    try:
        net = ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)
    except ValueError:
        return False
    return net.version == 4 and net.overlaps(subnet)


def host_isolation_problems(subnet: ipaddress.IPv4Network, lab_ns: list[str] | None = None) -> list[str]:
    """Return what, in the *host* namespace, would connect it to the lab (empty: isolated).

    Checks that the host namespace has no address and no route inside ``subnet`` and
    no veth whose peer lives in a lab namespace.
    """
    problems: list[str] = []
    for link in _ip_json(["-4", "addr"]):
        for a in link.get("addr_info", []):
            if ipaddress.IPv4Address(a["local"]) in subnet:
                problems.append(f"host interface {link['ifname']} has lab address {a['local']}")
    for route in _ip_json(["-4", "route", "show", "table", "all"]):
        if _overlaps(route.get("dst", ""), subnet):
            problems.append(f"host route to {route['dst']} via {route.get('dev')} reaches the lab subnet")
    lab_ns = lab_namespaces() if lab_ns is None else lab_ns
    ids = {e["nsid"]: e.get("name", "") for e in _ip_json(["netns", "list-id"])}
    for link in _ip_json(["-d", "link", "show", "type", "veth"]):
        peer_ns = ids.get(link.get("link_netnsid", -1), "")
        if peer_ns in lab_ns:
            problems.append(f"host veth {link['ifname']} is linked to lab namespace {peer_ns}")
    return problems


class Lab:
    """A running lab: namespaces, the bridge, and the processes started in them.

    Parameters
    ----------
    topology:
        The hosts to create.
    log_dir:
        Folder for the stdout/stderr of processes started with :meth:`start`.
    run_id:
        Short id in the namespace names; random by default, so runs never collide.

    Attributes
    ----------
    namespaces: host name (and ``"hub"``) -> namespace name.

    Examples
    --------
    >>> with Lab(default_topology(), log_dir) as lab:  # doctest: +SKIP
    ...     lab.start("att1", ["hping3", "-S", "-c", "10", "10.77.0.10"], targets=["10.77.0.10"])
    """

    def __init__(self, topology: Topology, log_dir: str | Path, run_id: str | None = None) -> None:
        self.topology = topology
        self.log_dir = Path(log_dir)
        self.run_id = run_id or uuid.uuid4().hex[:6]
        if not re.fullmatch(r"[a-z0-9]{1,12}", self.run_id):
            raise ConfigError(
                f"lab run_id must be 1-12 lower-case letters/digits; got {self.run_id!r} instead."
            )
        self.namespaces: dict[str, str] = {HUB: f"{NS_PREFIX}-{self.run_id}-{HUB}"}
        for h in topology.hosts:
            self.namespaces[h.name] = f"{NS_PREFIX}-{self.run_id}-{h.name}"
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._created: list[str] = []
        self._logs: list[object] = []

    # -- building -----------------------------------------------------------------
    def __enter__(self) -> Lab:
        check_environment(("ip",))
        problems = host_isolation_problems(self.topology.subnet, [])
        if problems:
            raise CaptureError(
                f"the host namespace already uses the lab subnet {self.topology.subnet}: "
                f"{'; '.join(problems)}. Refusing to build the lab."
            )
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ip(self, *args: str) -> None:
        out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise CaptureError(f"`ip {' '.join(args)}` failed: {out.stderr.strip()}")

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        self._ip("netns", "exec", ns, "sh", "-c", f"echo {value} > {path}")

    def _build(self) -> None:
        hub = self.namespaces[HUB]
        for ns in self.namespaces.values():
            self._ip("netns", "add", ns)
            self._created.append(ns)
            # Before any interface exists, so no interface ever gets IPv6.
            for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
                self._sysctl(ns, key, "1")
            self._sysctl(ns, "net.ipv4.ip_forward", "0")
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", hub, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self._ip("-n", hub, "link", "set", BRIDGE, "up")
        prefix = self.topology.subnet.prefixlen
        for h in self.topology.hosts:
            ns = self.namespaces[h.name]
            port = f"v-{h.name}"
            self._ip("-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("-n", hub, "link", "set", port, "master", BRIDGE, "up")
            self._ip("-n", ns, "addr", "add", f"{h.address}/{prefix}", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
        logger.info("lab %s up: %d namespaces on %s", self.run_id, len(self._created), self.topology.subnet)

    # -- processes ----------------------------------------------------------------
    def ns(self, host: str) -> str:
        """Return the namespace name of ``host`` (a host name or ``"hub"``)."""
        if host not in self.namespaces:
            raise ConfigError(f"no lab host named {host!r}; hosts are {sorted(self.namespaces)}.")
        return self.namespaces[host]

    def start(
        self,
        host: str,
        argv: list[str] | tuple[str, ...],
        *,
        targets: list[str] | tuple[str, ...] = (),
        log_name: str | None = None,
    ) -> subprocess.Popen:
        """Start ``argv`` inside the namespace of ``host``; return the process.

        Every ``target`` and every IPv4 literal found in ``argv`` is checked to be a
        lab address *before* the process starts.

        Raises
        ------
        ConfigError
            A target or an address in ``argv`` is not a lab address.
        """
        for t in [*targets, *find_ip_literals(argv)]:
            check_lab_target(t, self.topology.subnet)
        ns = self.ns(host)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = log_name or f"{host}-{Path(argv[0]).name}"
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append((host, proc))
        logger.debug("started %s in %s: pid %d", argv, ns, proc.pid)
        return proc

    def run(self, host: str, argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
        """Run a short command inside ``host``'s namespace and return its output."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(host), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_listening(self, host: str, port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
        """Wait until something listens on ``port`` inside ``host``'s namespace."""
        flag = "-ltnH" if proto == "tcp" else "-lunH"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run(host, ["ss", flag, f"sport = :{port}"])
            if out.stdout.strip():
                return
            time.sleep(0.1)
        raise CaptureError(f"nothing listens on {proto}/{port} in lab host {host!r} after {timeout:.0f} s.")

    @staticmethod
    def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 3.0) -> int | None:
        """Signal a process group started by :meth:`start`, wait ``grace`` s, then kill it."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        return proc.returncode

    # -- isolation ----------------------------------------------------------------
    def isolation_problems(self) -> list[str]:
        """Return every way the lab could reach beyond its namespaces (empty: isolated).

        Checks, per lab namespace: no default route, only routes inside the lab
        subnet, only lab addresses (plus loopback), IP forwarding off, only the
        expected interfaces, every veth peer inside a lab namespace; and in the host
        namespace: see :func:`host_isolation_problems`.
        """
        subnet = self.topology.subnet
        lab_ns = list(self.namespaces.values())
        problems: list[str] = []
        for host, ns in self.namespaces.items():
            for route in _ip_json(["-n", ns, "route", "show", "table", "all"]):
                dst = route.get("dst", "")
                if route.get("type") in ("local", "broadcast") or dst.startswith("127.") or dst == "::1":
                    continue
                if dst == "default" or not _overlaps(dst, subnet) or route.get("gateway"):
                    problems.append(f"{ns}: route {route} leaves the lab subnet")
                elif not ipaddress.ip_network(dst, strict=False).subnet_of(subnet):
                    problems.append(f"{ns}: route {dst} is wider than the lab subnet")
            for link in _ip_json(["-n", ns, "addr"]):
                for a in link.get("addr_info", []):
                    local = ipaddress.ip_address(a["local"])
                    if not (local.is_loopback or (local.version == 4 and local in subnet)):
                        problems.append(f"{ns}: {link['ifname']} has non-lab address {local}")
            fwd = self.run(host, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
            if fwd != "0":
                problems.append(f"{ns}: net.ipv4.ip_forward is {fwd!r}, expected '0'")
            ids = {e["nsid"]: e.get("name", "") for e in _ip_json(["-n", ns, "netns", "list-id"])}
            for link in _ip_json(["-n", ns, "-d", "link"]):
                kind = link.get("linkinfo", {}).get("info_kind", "")
                name = link["ifname"]
                if name == "lo":
                    continue
                if host == HUB and name == BRIDGE and kind == "bridge":
                    continue
                if kind != "veth":
                    problems.append(f"{ns}: unexpected interface {name} ({kind or 'physical'})")
                    continue
                peer = ids.get(link.get("link_netnsid", -1))
                if peer not in lab_ns:
                    problems.append(f"{ns}: veth {name} peers into namespace {peer!r}, not a lab namespace")
        problems += host_isolation_problems(subnet, lab_ns)
        return problems

    # -- teardown -------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process started here, kill what is left in the namespaces, delete them."""
        for _, proc in reversed(self._procs):
            try:
                self.stop_process(proc, grace=2.0)
            except Exception as exc:  # keep tearing down
                logger.warning("could not stop pid %d: %s", proc.pid, exc)
        for ns in reversed(self._created):
            _kill_and_delete(ns)
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]
        self._procs.clear()
        self._logs.clear()
        if self._created:
            logger.info("lab %s torn down", self.run_id)
        self._created.clear()

    def host(self, name: str) -> LabHost:
        """Return the :class:`LabHost` called ``name``."""
        return self.topology.host(name)
