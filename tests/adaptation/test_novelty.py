"""NoveltyModel: the conformal threshold's guarantee, distances, persistence and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iomt_ids.adaptation.novelty import NOVELTY_COLUMNS, SCALE_FLOOR, NoveltyModel, conformal_threshold
from iomt_ids.exceptions import ConfigError, DataError

D = len(NOVELTY_COLUMNS)


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Positive, heavy-tailed rows like window features (log-normal), columns independent."""
    return np.exp(rng.normal(2.0 + shift, 0.5, size=(n, D)))


def test_conformal_threshold_is_the_order_statistic() -> None:
    s = np.arange(1.0, 100.0)  # n = 99
    assert conformal_threshold(s, 0.05) == (95.0, 0.05)  # ceil(100 * 0.95) = 95th smallest
    assert conformal_threshold(s, 0.5) == (50.0, 0.5)
    # asking for less than 1/(n+1) takes the largest score and says what it certifies
    assert conformal_threshold(s, 1e-4) == (99.0, 0.01)
    with pytest.raises(ConfigError, match="alpha"):
        conformal_threshold(s, 0.0)
    with pytest.raises(DataError, match="no calibration"):
        conformal_threshold(np.array([]), 0.1)


def test_false_alarm_rate_on_exchangeable_traffic_stays_within_the_bound() -> None:
    """Fit on 400 benign rows; new rows from the same distribution exceed the threshold at rate <= alpha."""
    rng = np.random.default_rng(0)
    rates = []
    for seed in range(5):
        r = np.random.default_rng(seed)
        m = NoveltyModel.fit(_rows(r, 400), window=10, alpha=0.05, margin=1.0)
        assert m.alpha_bound == 0.05
        rates.append(float((m.score(_rows(rng, 4000)) > m.threshold).mean()))
    # conformal validity holds on average over calibration draws (plus sampling noise)
    assert np.mean(rates) <= 0.05 + 0.01, rates
    # and the threshold is not vacuous: it flags some of the exchangeable traffic at alpha = 0.05
    assert np.mean(rates) > 0.01, rates


def test_shifted_traffic_scores_far_above_the_threshold() -> None:
    rng = np.random.default_rng(1)
    m = NoveltyModel.fit(_rows(rng, 500), window=10, alpha=0.01)
    attack = _rows(rng, 200, shift=2.0)
    s = m.score(attack)
    assert (s > m.threshold).all() and (s > 2 * m.threshold).mean() > 0.95


def test_a_column_constant_in_benign_traffic_counts_a_change_by_the_scale_floor() -> None:
    rng = np.random.default_rng(2)
    benign = _rows(rng, 300)
    j = NOVELTY_COLUMNS.index("syn_flag_number")
    benign[:, j] = 0.0  # never a SYN in the site's normal traffic
    m = NoveltyModel.fit(benign, window=10, alpha=0.01)
    assert m.scale[j] == SCALE_FLOOR
    probe = benign[:5].copy()
    probe[:, j] = 0.5  # half of the window's packets are SYNs
    dev = m.deviations(probe)[:, j]
    assert np.allclose(dev, math.log1p(0.5) / SCALE_FLOOR)
    assert (m.score(probe) > m.threshold).all()


def test_inf_and_nan_are_finite_after_the_transform() -> None:
    rng = np.random.default_rng(3)
    m = NoveltyModel.fit(_rows(rng, 100), window=10)
    probe = _rows(rng, 3)
    probe[0, NOVELTY_COLUMNS.index("Rate")] = np.inf
    probe[1, NOVELTY_COLUMNS.index("Std")] = np.nan
    s = m.score(probe)
    assert np.isfinite(s).all() and s[0] > m.threshold


def test_leave_one_out_scores_ignore_the_window_itself() -> None:
    rng = np.random.default_rng(4)
    rows = _rows(rng, 50)
    m = NoveltyModel.fit(np.vstack([rows, rows[:1]]), window=10, k=1, margin=1.0)
    # the duplicated row has its twin at distance 0: its leave-one-out score is 0, not "itself"
    assert m.loo_scores[0] == pytest.approx(0.0, abs=1e-3) and m.loo_scores[-1] == pytest.approx(
        0.0, abs=1e-3
    )
    assert (m.loo_scores[1:-1] > 0).all()


def test_scores_are_the_kth_smallest_of_all_pairwise_distances() -> None:
    """The k-d tree search gives what comparing every pair gives, duplicates and far windows included."""
    rng = np.random.default_rng(7)
    benign = np.vstack([_rows(rng, 300), _rows(rng, 20)[[0] * 5]])  # five identical windows
    m = NoveltyModel.fit(benign, window=10, k=3, margin=1.0)
    new = np.vstack([_rows(rng, 40), _rows(rng, 10, shift=3.0), benign[:5]])
    x, ref = m.transform(new).astype(np.float64), m.reference.astype(np.float64)
    pairwise = np.sqrt(((x[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2))
    assert np.allclose(m.score(new), np.sort(pairwise, axis=1)[:, 2], rtol=0, atol=1e-9)
    own = np.sqrt(((ref[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(own, np.inf)  # leave one out: not the window itself (its twins do count)
    assert np.allclose(m.loo_scores, np.sort(own, axis=1)[:, 2], rtol=0, atol=1e-9)


def test_round_trip_through_plain_arrays() -> None:
    rng = np.random.default_rng(5)
    m = NoveltyModel.fit(_rows(rng, 80), window=100, alpha=0.02, k=2, margin=1.5)
    back = NoveltyModel.from_arrays(m.to_meta(), m.to_arrays("w100_"), "w100_")
    probe = _rows(rng, 10)
    assert np.array_equal(back.score(probe), m.score(probe)) and back.threshold == m.threshold
    bad = m.to_arrays("w100_")
    bad["w100_scale"] = np.zeros(D)
    with pytest.raises(DataError, match="scale must be > 0"):
        NoveltyModel.from_arrays(m.to_meta(), bad, "w100_")


def test_bad_input_is_named() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(DataError, match=r"W=10\): 3 benign windows; need at least 5"):
        NoveltyModel.fit(_rows(rng, 3), window=10)
    with pytest.raises(DataError, match="expected rows of"):
        NoveltyModel.fit(np.ones((50, 4)), window=10)
    with pytest.raises(ConfigError, match="margin"):
        NoveltyModel.fit(_rows(rng, 50), window=10, margin=0.5)
    with pytest.raises(DataError, match="lack the v2 columns"):
        NoveltyModel.columns_index(["Rate", "IAT"])
