"""Fixtures of the scoring-service tests: one tiny bundle per session, apps and clients."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'iomt-ids[serve]'")

from fastapi import FastAPI  # noqa: E402

with warnings.catch_warnings():
    # Starlette 1.x announces a move to "httpx2" for its TestClient; httpx still works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient  # noqa: E402

from iomt_ids.artifacts import ModelBundle, load_bundle  # noqa: E402
from iomt_ids.data.labels import STEM_TO_CLASS19, parse_file_name  # noqa: E402
from iomt_ids.features.schema import V2_COLUMNS  # noqa: E402
from iomt_ids.serving import ServeSettings, create_app  # noqa: E402
from iomt_ids.workflows import fit_bundle  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SAMPLE = SHARED / "data" / "ciciomt2024" / "v2" / "sample"
ROWS_PER_FILE = 25


def _real_frame() -> tuple[pd.DataFrame, list[str]] | None:
    files = sorted((SAMPLE / "train").glob("*.pcap.csv"))
    if not files:
        return None
    parts, labels = [], []
    for path in files:
        part = pd.read_csv(path, nrows=ROWS_PER_FILE)
        parts.append(part)
        labels += [parse_file_name(path).label] * len(part)
    return pd.concat(parts, ignore_index=True), labels


def _synthetic_frame(n_per_class: int = 20, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    labels19 = list(STEM_TO_CLASS19.values())
    centers = rng.normal(0, 3, size=(len(labels19), len(V2_COLUMNS)))
    x = np.vstack([c + rng.normal(0, 1, size=(n_per_class, len(V2_COLUMNS))) for c in centers])
    labels = [lab for lab in labels19 for _ in range(n_per_class)]
    return pd.DataFrame(np.abs(x), columns=list(V2_COLUMNS)), labels


@pytest.fixture(scope="session")
def train_data() -> tuple[pd.DataFrame, list[str]]:
    """A few hundred real v2 sample rows (25 per file), or a synthetic frame if shared data is absent."""
    return _real_frame() or _synthetic_frame()


@pytest.fixture(scope="session")
def trained_bundle(
    train_data: tuple[pd.DataFrame, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> ModelBundle:
    """A 6-class DNN trained for 2 epochs, already saved (so its version id is final)."""
    frame, labels = train_data
    model, _ = fit_bundle(frame, labels, task=6, model="dnn", preset="fast", epochs=2, seed=0, device="cpu")
    model.save(tmp_path_factory.mktemp("bundle"))
    return model


@pytest.fixture(scope="session")
def bundle_dir(trained_bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_bundle.save(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> ModelBundle:
    """The bundle as the service gets it: loaded from its folder (schema-checked, no pickle)."""
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def rows_frame(train_data: tuple[pd.DataFrame, list[str]]) -> pd.DataFrame:
    """Raw rows to score: 48 training rows spread over the classes, special values included as they come."""
    frame, _ = train_data
    picked = frame.iloc[:: max(1, len(frame) // 48)].iloc[:48].copy()
    # Make sure both special values the policy allows are present.
    picked.iloc[1, picked.columns.get_loc("Std")] = np.nan
    picked.iloc[2, picked.columns.get_loc("Rate")] = np.inf
    return picked.reset_index(drop=True)


def to_json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the service's JSON: NaN -> null, +/-inf -> "inf"/"-inf"."""

    def cell(v: float) -> Any:
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return float(v)

    return [{c: cell(float(v)) for c, v in row.items()} for row in frame.to_dict(orient="records")]


@pytest.fixture(scope="session")
def json_rows(rows_frame: pd.DataFrame) -> list[dict[str, Any]]:
    return to_json_rows(rows_frame)


@pytest.fixture
def make_app(bundle: ModelBundle) -> Callable[..., FastAPI]:
    """Build an app on the session bundle; keyword arguments become ServeSettings fields."""

    def build(**settings: Any) -> FastAPI:
        return create_app(bundle, ServeSettings(**settings))

    return build


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(max_rows=64, max_body_bytes=256 * 1024)) as c:
        yield c
