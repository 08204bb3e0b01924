"""Run one function over many items in parallel: a local process pool or a Ray cluster.

Workflows that fan out independent jobs (``scan``: one job per capture or chunk of
a capture; ``compare``: one per model and seed) share this small abstraction:

* :meth:`Executor.map` calls ``fn(item)`` for every item, in worker processes,
  and yields one :class:`TaskResult` per item **as it finishes** (not in input
  order; ``TaskResult.index`` is the item's position). Items are pulled from the
  iterable lazily, at most ``max_in_flight`` at a time, so a generator that
  builds large items (chunks of a capture) is throttled by the workers.
* An exception raised by ``fn`` is not retried (it would fail again): it comes
  back in ``TaskResult.error``. A worker process that dies (killed, out of
  memory, ``os._exit``) is retried up to ``max_retries`` times.
* :class:`LocalExecutor` (``kind="local"``): a :class:`concurrent.futures.ProcessPoolExecutor`
  with ``workers`` spawned processes. It never imports Ray.
* :class:`RayExecutor` (``kind="ray"``): every item is one Ray task
  (``@ray.remote(num_cpus=1, max_retries=3)``); Ray reruns a task whose worker
  died. It joins the cluster at ``address`` (or ``RAY_ADDRESS``), or starts a
  local one; Ray is imported only here, with a clear message when it is missing.

Thread policy: each worker process runs one task at a time with one compute
thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``, see
:func:`single_thread_worker`), so N workers use N cores and do not
oversubscribe them. ``fn`` must be picklable: a module-level function.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from iomt_ids.exceptions import ConfigError

__all__ = [
    "EXECUTORS",
    "RAY_HINT",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "TaskResult",
    "import_ray",
    "make_executor",
    "ray_cause",
    "single_thread_worker",
    "usable_cpus",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Executor kinds :func:`make_executor` knows.
EXECUTORS: tuple[str, ...] = ("local", "ray")
#: What to do when Ray is missing.
RAY_HINT = "install the ray extra: pip install 'iomt-ids[ray]'"
#: Environment of every worker process: one OpenMP/BLAS thread each.
_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def single_thread_worker() -> None:
    """Make this (worker) process compute on one thread: OpenMP/BLAS env and torch's pools.

    Idempotent and cheap; called when a worker starts and before each task. The
    environment variables only act on libraries not yet initialised, so torch, if
    loaded, is also told directly.
    """
    for key, value in _THREAD_ENV.items():
        os.environ.setdefault(key, value)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """What a worker runs for one item."""
    single_thread_worker()
    return fn(item)


@dataclass
class TaskResult(Generic[T, R]):
    """The outcome of ``fn(item)`` for one item.

    Attributes
    ----------
    index : int
        Position of the item in the iterable given to :meth:`Executor.map`.
    item : object
        The item itself.
    value : object
        What ``fn`` returned (None when it failed).
    error : BaseException or None
        What ``fn`` raised, or why the task could not run (its worker died more
        than ``max_retries`` times); None on success.
    attempts : int
        Times the item was started (local executor; Ray counts its retries itself).
    """

    index: int
    item: T
    value: R | None = None
    error: BaseException | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self) -> R:
        """The value; raises the task's error if it failed."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class Executor(ABC):
    """Runs ``fn(item)`` for many items in parallel; see the module docstring.

    Attributes
    ----------
    kind : str
        ``"local"`` or ``"ray"``.
    workers : int
        Tasks that run at the same time.
    max_retries : int
        Reruns of a task whose worker process died.
    """

    kind: str = ""
    workers: int = 1
    max_retries: int = 3

    @abstractmethod
    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[TaskResult[T, R]]:
        """Call ``fn`` on every item in worker processes; yield results as they finish.

        Parameters
        ----------
        fn : callable
            A module-level (picklable) function of one argument.
        items : iterable
            Pulled lazily: at most ``max_in_flight`` items are submitted and not yet
            yielded back at any time.
        max_in_flight : int, optional
            Default: twice the number of workers (local: the pool's queue stays fed);
            Ray: the number of workers (see :meth:`RayExecutor.map`).

        Yields
        ------
        TaskResult
            One per item, in completion order.
        """

    def describe(self) -> str:
        """One line: kind and workers."""
        return f"{self.kind} executor, {self.workers} worker{'s' if self.workers != 1 else ''}"

    def close(self) -> None:  # noqa: B027 - optional hook: an executor may hold nothing
        """Release the workers (and a Ray runtime this executor started)."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_workers(workers: int | None) -> int | None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1; got {workers!r} instead.")
    return workers


def _check_retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be an integer >= 0; got {max_retries!r} instead.")
    return max_retries


class LocalExecutor(Executor):
    """A pool of ``workers`` worker processes on this machine (``concurrent.futures``).

    Parameters
    ----------
    workers : int, optional
        Default: the CPUs this process may use (:func:`usable_cpus`).
    max_retries : int, default 3
        When a worker process dies the pool breaks and every task running in it
        fails; the pool is rebuilt and those tasks are resubmitted, each at most
        ``max_retries`` times.
    start_method : str, default "spawn"
        Fresh interpreters: safe with torch's and OpenMP's threads in the parent.
        The pool starts on the first :meth:`map` and is reused until :meth:`close`.
    """

    kind = "local"

    def __init__(self, workers: int | None = None, max_retries: int = 3, start_method: str = "spawn") -> None:
        self.workers = _check_workers(workers) or usable_cpus()
        self.max_retries = _check_retries(max_retries)
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=single_thread_worker,
            )
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[TaskResult[T, R]]:
        limit = max(1, max_in_flight or 2 * self.workers)
        it = enumerate(items)
        exhausted = False
        running: dict[Future[Any], tuple[int, T, int]] = {}

        def submit(index: int, item: T, attempts: int) -> None:
            running[self._get_pool().submit(_call, fn, item)] = (index, item, attempts)

        try:
            while True:
                while not exhausted and len(running) < limit:
                    nxt = next(it, None)
                    if nxt is None:
                        exhausted = True
                        break
                    submit(nxt[0], nxt[1], 1)
                if not running:
                    return
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                broken: list[tuple[int, T, int]] = []
                for fut in done:
                    index, item, attempts = running.pop(fut)
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        broken.append((index, item, attempts))
                    elif exc is not None:
                        yield TaskResult(index, item, error=exc, attempts=attempts)
                    else:
                        yield TaskResult(index, item, value=fut.result(), attempts=attempts)
                if broken:
                    # a worker died: the pool is unusable and every task in it failed with it
                    broken += [running.pop(f) for f in list(running)]
                    self._drop_pool()
                    for index, item, attempts in sorted(broken, key=lambda b: b[0]):
                        if attempts > self.max_retries:
                            yield TaskResult(
                                index,
                                item,
                                error=RuntimeError(
                                    f"a worker process died {attempts} times while running this task "
                                    f"(retried {self.max_retries} times)"
                                ),
                                attempts=attempts,
                            )
                        else:
                            logger.warning(
                                "a worker process died; resubmitting task %d (try %d)", index, attempts + 1
                            )
                            submit(index, item, attempts + 1)
        finally:
            for fut in running:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray, which is not installed ({exc}); {RAY_HINT}") from None
    return ray


def ray_cause(exc: BaseException) -> BaseException:
    """The task's own exception inside Ray's wrapper (``RayTaskError``), else ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RayExecutor(Executor):
    """Every item is one Ray task (``num_cpus=1``, retried ``max_retries`` times if its worker dies).

    Parameters
    ----------
    workers : int, optional
        Tasks in flight. Default: the cluster's CPUs. When this executor starts a
        local Ray runtime, it gets ``workers`` CPUs (default: :func:`usable_cpus`).
    address : str, optional
        Cluster to join (``HOST:6379``, ``ray://HOST:10001`` or ``auto``); default
        the ``RAY_ADDRESS`` environment variable, else a local runtime is started.
        If Ray is already initialised in this process it is used as it is.
    max_retries : int, default 3
        Ray's ``max_retries`` of every task (reruns after a worker or node died).
    init_kwargs : dict, optional
        More arguments for ``ray.init``.
    """

    kind = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        max_retries: int = 3,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        _check_workers(workers)
        self.max_retries = _check_retries(max_retries)
        ray = import_ray()
        self._ray = ray
        self._owns = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.address = address
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, **(init_kwargs or {})}
            if address:
                kwargs["address"] = address
            else:
                kwargs.setdefault("num_cpus", workers or usable_cpus())
                kwargs.setdefault("include_dashboard", False)
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray runtime"
                raise ConfigError(f"cannot start or join {where}: {exc}") from None
            self._owns = True
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_call)

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int | None = None
    ) -> Iterator[TaskResult[T, R]]:
        """See :meth:`Executor.map`; ``max_in_flight`` (default ``workers``) tasks run at once.

        A cluster may have more free CPUs than ``workers``: only that many tasks are
        submitted, so ``workers`` bounds this job's share. As many more items are
        taken from ``items`` ahead of time (built, not submitted), so that a slow item
        generator does not leave a worker idle.
        """
        ray = self._ray
        limit = max(1, max_in_flight or self.workers)
        it = enumerate(items)
        exhausted = False
        ahead: deque[tuple[int, T]] = deque()
        pending: dict[Any, tuple[int, T]] = {}
        try:
            while True:
                while not exhausted and len(pending) + len(ahead) < 2 * limit:
                    nxt = next(it, None)
                    if nxt is None:
                        exhausted = True
                    else:
                        ahead.append(nxt)
                    while ahead and len(pending) < limit:
                        index, item = ahead.popleft()
                        pending[self._remote.remote(fn, item)] = (index, item)
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index, item = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except Exception as exc:  # its error, or its worker died more than max_retries times
                        yield TaskResult(index, item, error=ray_cause(exc))
                    else:
                        yield TaskResult(index, item, value=value)
                while ahead and len(pending) < limit:
                    index, item = ahead.popleft()
                    pending[self._remote.remote(fn, item)] = (index, item)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:  # already finished or gone
                    pass

    def describe(self) -> str:
        where = self.address or ("local runtime" if self._owns else "existing runtime")
        return f"ray executor ({where}), {self.workers} worker{'s' if self.workers != 1 else ''}"

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False


def make_executor(
    kind: str = "local", workers: int | None = None, address: str | None = None, max_retries: int = 3
) -> Executor:
    """An executor by name: ``"local"`` (process pool) or ``"ray"``.

    Raises
    ------
    ConfigError
        Unknown kind, bad ``workers``, an address with the local executor, or Ray missing.
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"executor must be one of {list(EXECUTORS)}; got {kind!r} instead.")
    if kind == "local":
        if address:
            raise ConfigError(
                f"a Ray address ({address!r}) needs --executor ray; the local executor has none."
            )
        return LocalExecutor(workers, max_retries=max_retries)
    return RayExecutor(workers, address=address, max_retries=max_retries)
