"""Explanations are checked, not decorative: exactness of each method, stability, faithfulness.

Faithfulness (on real CICIoMT2024 v2 sample rows): replacing an alert's top-3 features by
their benign reference values (median of the benign training rows) must lower P(attack)
more than replacing 3 random features (mean over 10 draws), for >= 90 % of the alerts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.explain import attributions, explain_rows, forest_shap, format_explanation

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "ciciomt2024" / "v2" / "sample"
TRAIN_PER_FILE = 150
TEST_PER_FILE = 15
MIN_SHARE = 0.9


def _load(split: str, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    from iomt_ids.data.labels import parse_file_name

    parts, labels = [], []
    for path in sorted((SAMPLE / split).glob("*.pcap.csv")):
        part = pd.read_csv(path, nrows=n)
        parts.append(part)
        labels += [parse_file_name(path).label] * len(part)
    return pd.concat(parts, ignore_index=True), np.asarray(labels, dtype=object)


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    if not (SAMPLE / "train").is_dir() or not (SAMPLE / "test").is_dir():
        pytest.skip(f"real CICIoMT2024 v2 sample rows not found at {SAMPLE} (shared data absent)")
    train, y_train = _load("train", TRAIN_PER_FILE)
    test, _ = _load("test", TEST_PER_FILE)
    return {"train": train, "y": y_train, "test": test, "benign": train[y_train == "Benign"]}


@pytest.fixture(scope="module")
def bundles(data: dict[str, object]) -> dict[str, object]:
    from iomt_ids.workflows import fit_bundle

    out = {}
    for model, extra in (
        ("lightgbm", {}),
        ("random_forest", {}),
        ("dnn", {"epochs": 15}),
        ("gru_dnn", {"epochs": 15}),
    ):
        out[model], _ = fit_bundle(
            data["train"], data["y"], task=6, model=model, seed=0, device="cpu", **extra
        )
    return out


def _attack_score(bundle: object, rows: pd.DataFrame) -> np.ndarray:
    proba = bundle.predict_proba(rows)  # type: ignore[attr-defined]
    return 1.0 - proba[:, list(bundle.classes).index("Benign")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", ["lightgbm", "random_forest", "dnn", "gru_dnn"])
def test_faithfulness_top3_beats_random3(model: str, data: dict, bundles: dict, record_property) -> None:
    bundle, test, benign = bundles[model], data["test"], data["benign"]
    score = _attack_score(bundle, test)
    alerts = test[score >= 0.5].reset_index(drop=True)
    assert len(alerts) >= 30, f"{model}: only {len(alerts)} alerts among the test rows"
    reference = benign.median(numeric_only=True)
    explained = explain_rows(bundle, alerts, top=3, baseline=benign)
    before = _attack_score(bundle, alerts)
    kept = list(bundle.preprocessor.kept_columns_)

    def drop_after(columns_per_row: list[list[str]]) -> np.ndarray:
        changed = alerts.copy()
        for i, cols in enumerate(columns_per_row):
            for c in cols:
                changed.iat[i, changed.columns.get_loc(c)] = reference[c]
        return before - _attack_score(bundle, changed)

    top_drop = drop_after([[it["feature"] for it in row] for row in explained])
    rng = np.random.default_rng(0)
    random_drop = np.mean(
        [
            drop_after([list(rng.choice(kept, 3, replace=False)) for _ in range(len(alerts))])
            for _ in range(10)
        ],
        axis=0,
    )
    share = float((top_drop > random_drop).mean())
    record_property(f"faithfulness_{model}", share)
    print(f"\nfaithfulness {model}: {share:.3f} of {len(alerts)} alerts "
          f"(mean drop top-3 {top_drop.mean():.3f}, random-3 {random_drop.mean():.3f})")  # fmt: skip
    assert share >= MIN_SHARE, f"{model}: top-3 beat random-3 for only {share:.1%} of {len(alerts)} alerts"


@pytest.mark.parametrize("model", ["lightgbm", "random_forest", "dnn"])
def test_stable_across_runs(model: str, data: dict, bundles: dict) -> None:
    rows = data["test"].iloc[::25]
    first = explain_rows(bundles[model], rows, baseline=data["benign"])
    second = explain_rows(bundles[model], rows, baseline=data["benign"])
    assert [[it["feature"] for it in r] for r in first] == [[it["feature"] for it in r] for r in second]
    assert all(len(r) == 3 for r in first)
    assert all(isinstance(s, str) and "=" in s and "(" in s for s in format_explanation(first[0]))


def test_lightgbm_contributions_sum_to_raw_score(data: dict, bundles: dict) -> None:
    bundle = bundles["lightgbm"]
    rows = data["test"].iloc[::7]
    att = attributions(bundle, rows)
    x = bundle.transform(rows)
    raw = bundle.estimator.booster.predict(x.astype(np.float64), raw_score=True)  # (n, C)
    classes = list(bundle.classes)
    target = [classes.index(t) for t in att.target]
    expected = raw[np.arange(len(x)), target] - raw[:, classes.index("Benign")]
    np.testing.assert_allclose(att.base + att.values.sum(axis=1), expected, rtol=1e-6, atol=1e-6)
    # and per class: LightGBM's own contributions + bias reproduce every raw score
    contrib = bundle.estimator.booster.predict(x.astype(np.float64), pred_contrib=True)
    per_class = contrib.reshape(len(x), len(classes), -1).sum(axis=2)
    np.testing.assert_allclose(per_class, raw, rtol=1e-6, atol=1e-6)


def test_forest_shap_matches_brute_force_shapley() -> None:
    from sklearn.ensemble import RandomForestClassifier

    from iomt_ids.models.trees import ForestEstimator

    rng = np.random.default_rng(1)
    n_feat, n_classes = 5, 3
    x = rng.normal(size=(300, n_feat))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] * x[:, 2] > 0.3).astype(int)
    rf = RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0).fit(x, y)
    forest = ForestEstimator.from_sklearn(rf, n_classes)
    rows = rng.normal(size=(4, n_feat))
    reference = rng.normal(size=n_feat)
    phi, base = forest_shap(forest, rows, reference)
    np.testing.assert_allclose(base, forest.predict_proba(reference[None])[0], atol=1e-6)

    def brute(row: np.ndarray) -> np.ndarray:
        # exact Shapley values of v(S) = f(x_S, r_rest) by enumerating all 2^F coalitions
        out = np.zeros((n_feat, n_classes))
        cache = {}
        for mask in range(1 << n_feat):
            z = np.where([(mask >> j) & 1 for j in range(n_feat)], row, reference)
            cache[mask] = forest.predict_proba(z[None])[0].astype(np.float64)
        for j in range(n_feat):
            for mask in range(1 << n_feat):
                if mask >> j & 1:
                    continue
                s = bin(mask).count("1")
                w = math.factorial(s) * math.factorial(n_feat - s - 1) / math.factorial(n_feat)
                out[j] += w * (cache[mask | 1 << j] - cache[mask])
        return out

    for i, row in enumerate(rows):
        np.testing.assert_allclose(phi[i], brute(row), atol=1e-6)
    # efficiency: base + sum of contributions = the forest's output
    np.testing.assert_allclose(base + phi.sum(axis=1), forest.predict_proba(rows), atol=1e-6)
    # several references: the average of the single-reference values
    refs = np.stack([reference, -reference])
    phi2, _ = forest_shap(forest, rows, refs)
    one = [forest_shap(forest, rows, r)[0] for r in refs]
    np.testing.assert_allclose(phi2, (one[0] + one[1]) / 2, atol=1e-12)


def test_integrated_gradients_completeness(data: dict, bundles: dict) -> None:
    bundle = bundles["dnn"]
    rows = data["test"].iloc[::9]
    att = attributions(bundle, rows, baseline=data["benign"], n_steps=100)
    gap = att.output - att.base
    err = np.abs(att.values.sum(axis=1) - gap)
    assert (err <= 0.01 + 0.01 * np.abs(gap)).all(), f"IG completeness off by up to {err.max():.4f}"


@pytest.mark.parametrize("name", ["lstm", "gru_dnn"])
def test_integrated_gradients_recurrent_completeness(name: str, data: dict) -> None:
    from iomt_ids.workflows import fit_bundle

    bundle, _ = fit_bundle(data["train"].iloc[::4], data["y"][::4], task=6, model=name, epochs=1, seed=0,
                           device="cpu")  # fmt: skip
    rows = data["test"].iloc[::40]
    att = attributions(bundle, rows, n_steps=100)  # no baseline: zeros in the scaled space
    assert att.method == "integrated-gradients"
    gap = att.output - att.base
    assert np.allclose(att.values.sum(axis=1), gap, atol=0.01 + 0.01 * np.abs(gap).max())


def test_lightgbm_class_boosters_match_full_treeshap(data: dict, bundles: dict) -> None:
    """Per-class boosters (the explainer's fast path) give LightGBM's full-model TreeSHAP exactly."""
    est = bundles["lightgbm"].estimator
    x = bundles["lightgbm"].transform(data["test"]).astype(np.float64)
    n_classes = len(bundles["lightgbm"].classes)
    full = est.booster.predict(x, pred_contrib=True).reshape(len(x), n_classes, -1)
    raw = est.booster.predict(x, raw_score=True)
    for c in range(n_classes):
        booster = est.class_booster(c)
        assert booster.num_trees() == est.booster.num_trees() // n_classes
        np.testing.assert_allclose(booster.predict(x, raw_score=True), raw[:, c], rtol=0, atol=1e-12)
        np.testing.assert_allclose(booster.predict(x, pred_contrib=True), full[:, c], rtol=0, atol=1e-12)


def test_lightgbm_attributions_equal_full_model_path(data: dict, bundles: dict) -> None:
    """The explainer's answer (class boosters, repeated rows explained once) is the full model's."""
    bundle = bundles["lightgbm"]
    rows = pd.concat([data["test"].iloc[::5], data["test"].iloc[::10]], ignore_index=True)  # repeats
    att = attributions(bundle, rows)
    x = bundle.transform(rows).astype(np.float64)
    classes = list(bundle.classes)
    full = bundle.estimator.booster.predict(x, pred_contrib=True).reshape(len(x), len(classes), -1)
    target = np.array([classes.index(t) for t in att.target])
    diff = full[np.arange(len(x)), target] - full[:, classes.index("Benign")]
    np.testing.assert_allclose(att.values, diff[:, :-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(att.base, diff[:, -1], rtol=0, atol=1e-12)


def test_class_model_text_rejects_non_model() -> None:
    from iomt_ids.exceptions import BundleError
    from iomt_ids.models.trees import class_model_text

    with pytest.raises(BundleError, match="Tree=0"):
        class_model_text("not a model", 0, 3)
