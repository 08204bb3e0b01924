"""Thread policy: how many CPU threads the models use, so that a busy machine degrades gracefully.

PyTorch and LightGBM default to one thread per core and, through OpenMP, to threads
that *spin* while they wait for work. On a machine where other jobs already use the
cores, that combination collapses: measured on our 2-core CI machines, a 3-epoch
training fell from 131 k rows/s alone to 9-15 k rows/s beside other jobs
(``benchmarks/bench_threads.py`` shows both cases with this policy and without it).

The policy every model-running command applies (``--threads N``; 0 = automatic):

1. ``--threads N`` when given, else the ``IOMT_IDS_THREADS`` environment variable;
2. otherwise *automatic*: the CPUs this process may use (affinity mask and cgroup
   quota), less the ones other jobs keep busy (the 1-minute load average), at least one;
3. OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, set before torch or
   LightGBM start their thread pools, unless the user set it), so an idle thread
   gives its core back instead of spinning.

>>> choose_threads(3).threads
3
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from iomt_ids.exceptions import ConfigError

__all__ = [
    "THREADS_ENV",
    "ThreadPolicy",
    "apply_thread_policy",
    "choose_threads",
    "cpu_model",
    "current_threads",
    "git_commit",
    "prepare_environment",
    "stderr_is_terminal",
    "usable_cpus",
]

#: Environment variable that sets the thread count when ``--threads`` is not given.
THREADS_ENV = "IOMT_IDS_THREADS"

#: The most threads the policy picks on its own (past this, our models gain nothing).
MAX_AUTO_THREADS = 16


@dataclass(frozen=True)
class ThreadPolicy:
    """The chosen thread count and why.

    Attributes
    ----------
    threads : int
        Intra-op threads for PyTorch, ``num_threads`` for LightGBM.
    usable_cpus : int
        CPUs this process may run on.
    load : float
        The 1-minute load average when the choice was made (-1 where unknown).
    source : str
        ``"option"``, ``"environment"`` or ``"auto"``.
    """

    threads: int
    usable_cpus: int
    load: float
    source: str

    def describe(self) -> str:
        if self.source == "auto":
            return (
                f"threads: {self.threads} (auto: {self.usable_cpus} usable CPUs, load {self.load:.1f}; "
                "--threads N to choose)"
            )
        where = "--threads" if self.source == "option" else THREADS_ENV
        return f"threads: {self.threads} (from {where})"


def _cgroup_cpus() -> float | None:
    """The cgroup v2 CPU quota in CPUs (``/sys/fs/cgroup/cpu.max``), or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return -1.0


def choose_threads(requested: int | None = None, cap: int | None = None) -> ThreadPolicy:
    """Pick the thread count (see the module docstring); ConfigError for a negative request.

    ``cap`` bounds the automatic choice only (an explicit request is obeyed): streaming
    inference of small window batches (``detect``, ``serve``) is fastest on one thread,
    measured in ``benchmarks/results/detect-cpu-*.json``.
    """
    cpus, load = usable_cpus(), _load()
    if requested is not None and requested != 0:
        if requested < 0:
            raise ConfigError(f"--threads must be >= 0 (0: automatic); got {requested}.")
        return ThreadPolicy(int(requested), cpus, load, "option")
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = -1
        if n < 0:
            raise ConfigError(f"{THREADS_ENV} must be an integer >= 0 (0: automatic); got {env!r}.")
        if n > 0:
            return ThreadPolicy(n, cpus, load, "environment")
    idle = cpus - max(load, 0.0)
    threads = max(1, min(cpus, cap or MAX_AUTO_THREADS, MAX_AUTO_THREADS, math.floor(idle + 0.5)))
    return ThreadPolicy(threads, cpus, load, "auto")


def prepare_environment() -> None:
    """Set OpenMP's passive waiting unless the user chose; call before torch or LightGBM load."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def apply_thread_policy(requested: int | None = None, cap: int | None = None) -> ThreadPolicy:
    """Choose the thread count and apply it to PyTorch (and, through the environment, LightGBM).

    Importing torch is left to the caller's need: the count is applied to torch only
    when torch is loaded or about to be (it is imported here in that case).
    """
    prepare_environment()
    policy = choose_threads(requested, cap)
    os.environ[THREADS_ENV] = str(policy.threads)  # read by the tree models and worker processes
    import torch

    if torch.get_num_threads() != policy.threads:
        torch.set_num_threads(policy.threads)
    return policy


def current_threads() -> int:
    """The thread count the policy chose in this process (or would choose now)."""
    return choose_threads().threads


# -- where a result was produced (results files name the machine and the commit) ---------------------------
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows, else "unknown"."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(where: str | Path) -> str | None:
    """The short commit of the git checkout holding ``where``, or None (not a checkout, no git)."""
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def stderr_is_terminal() -> bool:
    """Whether standard error is a terminal (progress bars there; log lines otherwise)."""
    import sys

    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False
