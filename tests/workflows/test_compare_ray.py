"""``compare --executor ray`` on a real local Ray cluster: the same records as the local executor.

The local executor runs each (task, model, seed) here, one after another; the Ray executor runs
each as a Ray task that reads the dataset from the object store. With the same seeds and one
compute thread on both sides, every metric of every run must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'iomt-ids[ray]')")

from iomt_ids.workflows.compare import CompareConfig, compare, expand_specs, load_results  # noqa: E402

METRICS = (
    "macro_f1",
    "weighted_f1",
    "accuracy",
    "per_class_f1",
    "support",
    "rows_train",
    "rows_test",
    "epochs",
)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _records(out: Path) -> dict[tuple, dict]:
    return {(r["task"], r["key"], r["seed"]): r for r in load_results(out)}


def test_ray_sweep_equals_the_local_sweep_metric_for_metric(
    tiny_dataset: Path, tmp_path: Path, cluster
) -> None:
    import torch

    specs = expand_specs(["dnn:fast", "lightgbm"], ["paper"])
    common = dict(data=tiny_dataset, tasks=(2, 19), specs=specs, epochs=3, seeds=2, device="cpu")
    threads, env = torch.get_num_threads(), os.environ.get("IOMT_IDS_THREADS")
    torch.set_num_threads(1)
    os.environ["IOMT_IDS_THREADS"] = "1"
    try:
        compare(CompareConfig(out=tmp_path / "local", **common))
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop("IOMT_IDS_THREADS", None)
        else:
            os.environ["IOMT_IDS_THREADS"] = env
    rows = compare(CompareConfig(out=tmp_path / "ray", executor="ray", **common))
    local, remote = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert len(local) == 2 * 2 * 2 and local.keys() == remote.keys()
    for key, rec in local.items():
        for m in METRICS:
            assert remote[key][m] == rec[m], (key, m)
    assert {(r["task"], r["model"]) for r in rows} == {
        (2, "dnn"),
        (2, "lightgbm"),
        (19, "dnn"),
        (19, "lightgbm"),
    }
    assert (tmp_path / "ray" / "compare.md").read_text().count("| dnn |") == 2

    # resuming: every run is done, so nothing is sent to Ray again and the files are untouched
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "runs").rglob("seed*.json")}
    compare(CompareConfig(out=tmp_path / "ray", executor="ray", **common))
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "runs").rglob("seed*.json")} == stamp


def test_the_local_executor_never_imports_ray(tiny_dataset: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from iomt_ids.workflows.compare import CompareConfig, compare, expand_specs; "
        f"compare(CompareConfig(data={str(tiny_dataset)!r}, out={str(tmp_path / 'c')!r}, tasks=(2,), "
        "specs=expand_specs(['lightgbm'], ['paper']), seeds=1)); print('ray' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "False"
    assert json.loads(next((tmp_path / "c" / "runs").rglob("seed0.json")).read_text())["macro_f1"] > 0


def test_bad_executor_options_are_refused_before_any_work(tmp_path: Path) -> None:
    from iomt_ids.exceptions import ConfigError

    specs = expand_specs(["lightgbm"], ["paper"])
    with pytest.raises(ConfigError, match="executor must be 'local' or 'ray'"):
        CompareConfig(data=tmp_path, out=tmp_path, specs=specs, executor="slurm")
    with pytest.raises(ConfigError, match="needs --executor ray"):
        CompareConfig(data=tmp_path, out=tmp_path, specs=specs, ray_address="10.0.0.1:6379")
