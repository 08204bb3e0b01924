"""Run the trainings of a ``compare`` sweep as Ray tasks (``iomt-ids compare --executor ray``).

The dataset is read once, by the driver, and put in Ray's object store once: every
task gets a reference to it, not a copy of the files to read again. Each (task, model,
preset, seed, protocol, feature set) run is one task with declared resources: one CPU,
and one GPU for a deep model when the cluster has GPUs. A task whose worker dies is
rerun (``max_retries``); a run that raises is reported and the sweep goes on. Records
come back to the driver, which writes them exactly as the local executor does, so
``--resume`` and the tables do not depend on where a run ran.

Importing this module does not import Ray; :func:`run_on_ray` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from iomt_ids.exceptions import ConfigError

__all__ = ["run_on_ray"]

log = logging.getLogger(__name__)


def _run_task(
    run_one: Callable[..., dict[str, Any]], splits: Any, task: int, spec: Any, seed: int, cfg: Any
) -> dict[str, Any]:
    """What one Ray worker runs: ``run_one`` (one training and test) on one compute thread per CPU it holds."""
    import torch

    os.environ["IOMT_IDS_THREADS"] = "1"  # LightGBM and the forest: one thread per CPU the task holds
    torch.set_num_threads(1)
    return run_one(splits, task, spec, seed, cfg)


def run_on_ray(
    run_one: Callable[..., dict[str, Any]],
    splits: Any,
    pending: Sequence[tuple[int, Any, int]],
    cfg: Any,
    *,
    address: str | None = None,
    workers: int | None = None,
    max_retries: int = 3,
    is_deep: Callable[[str], bool] = lambda name: False,
) -> Iterator[tuple[int, Any, int, dict[str, Any] | None, BaseException | None]]:
    """Run ``run_one(splits, task, spec, seed, cfg)`` for the ``pending`` (task, spec, seed) triples on a
    Ray cluster; yield each as it finishes. ``run_one`` must be a module-level function (Ray pickles it by
    reference).

    Yields ``(task, spec, seed, record, error)``: ``record`` is ``run_one``'s result, or
    None with the ``error`` it raised (or why its worker could not finish it).

    Parameters
    ----------
    address : str, optional
        The cluster (``HOST:6379``, ``ray://HOST:10001``, ``auto``); default ``RAY_ADDRESS``,
        else a local Ray runtime on this machine's usable CPUs (``workers`` of them if given).
    workers : int, optional
        Most runs at the same time (default: every CPU of the cluster).
    """
    from iomt_ids.workflows.executors import import_ray, ray_cause, usable_cpus

    ray = import_ray()
    owns = False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs.update(num_cpus=workers or usable_cpus(), include_dashboard=False)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray runtime"
            raise ConfigError(f"cannot start or join {where}: {exc}") from None
        owns = True
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        limit = workers or max(1, int(resources.get("CPU", 1)))
        log.info(
            "compare on Ray: %d runs, %d CPUs and %d GPUs in the cluster, at most %d at once",
            len(pending), int(resources.get("CPU", 0)), gpus, limit,
        )  # fmt: skip
        data_ref = ray.put(splits)  # once; tasks read it from the object store
        remote = ray.remote(_run_task)
        todo = list(pending)
        running: dict[Any, tuple[int, Any, int]] = {}
        while todo or running:
            while todo and len(running) < limit:
                task, spec, seed = todo.pop(0)
                opts: dict[str, Any] = {"num_cpus": 1, "max_retries": max_retries}
                if gpus and is_deep(spec.model):
                    opts["num_gpus"] = 1
                running[remote.options(**opts).remote(run_one, data_ref, task, spec, seed, cfg)] = (
                    task,
                    spec,
                    seed,
                )
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                task, spec, seed = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the run's error, or its worker died too often
                    yield task, spec, seed, None, ray_cause(exc)
                else:
                    yield task, spec, seed, rec, None
    finally:
        if owns:
            ray.shutdown()
