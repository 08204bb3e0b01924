from __future__ import annotations

import numpy as np
import pytest

from iomt_ids.data.preprocess import Preprocessor
from iomt_ids.exceptions import BadValueError, NotFittedError
from iomt_ids.features.schema import V2_COLUMNS
from tests.conftest import synthetic_rows

COLS = list(V2_COLUMNS)


def _rows(n: int = 50) -> np.ndarray:
    return synthetic_rows("v2", n).to_numpy()


def test_inf_rate_is_capped_at_train_max_and_nan_std_is_zero() -> None:
    x = _rows()
    rate = COLS.index("Rate")
    std = COLS.index("Std")
    pre = Preprocessor(input_columns=tuple(COLS)).fit(x)
    probe = x[:2].copy()
    probe[0, rate] = np.inf
    probe[1, std] = np.nan
    cleaned = pre.clean(probe)
    assert cleaned[0, rate] == x[:, rate].max()
    assert cleaned[1, std] == 0.0
    out = pre.transform(probe)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_zero_variance_columns_are_dropped_and_scaling_fitted_on_train() -> None:
    x = _rows(200)
    pre = Preprocessor(input_columns=tuple(COLS)).fit(x)
    assert "Number" in pre.zero_variance_ and "Number" not in pre.kept_columns_
    z = pre.transform(x)
    assert z.shape == (200, len(COLS) - len(pre.zero_variance_))
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)


@pytest.mark.parametrize(
    "column,value,word", [("Tot sum", np.nan, "missing/NaN"), ("Min", np.inf, "infinite")]
)
def test_special_values_outside_policy_columns_are_errors(column: str, value: float, word: str) -> None:
    x = _rows()
    pre = Preprocessor(input_columns=tuple(COLS)).fit(x)
    x[3, COLS.index(column)] = value
    with pytest.raises(BadValueError, match=f"column '{column}' is {word} in 1 row.*row 3"):
        pre.transform(x, source="rows.csv")


def test_one_rule_per_special_value_nan_first_and_each_column_its_own_policy() -> None:
    from iomt_ids.data.preprocess import check_special_values

    x = _rows()
    x[5, COLS.index("Min")] = np.inf
    x[7, COLS.index("Tot sum")] = np.nan
    with pytest.raises(BadValueError, match="'Tot sum' is missing/NaN in 1 row.*first at row 17"):
        check_special_values(x, COLS, row_offset=10)  # NaN is reported before inf
    x[7, COLS.index("Tot sum")] = 1.0
    with pytest.raises(
        BadValueError, match=r"'Min' is infinite.*only \['Drate', 'Rate', 'Srate'\] may be infinite"
    ):
        check_special_values(x, COLS)
    x[5, COLS.index("Min")] = 1.0
    x[:, COLS.index("Rate")] = np.inf  # allowed: inf in a rate column, NaN in Std
    x[:, COLS.index("Std")] = np.nan
    check_special_values(x, COLS)
    x[2, COLS.index("Std")] = np.inf  # but each column keeps its own rule: no inf in Std, no NaN in Rate
    with pytest.raises(BadValueError, match="'Std' is infinite"):
        check_special_values(x, COLS)
    x[2, COLS.index("Std")] = np.nan
    x[4, COLS.index("Rate")] = np.nan
    with pytest.raises(
        BadValueError, match=r"'Rate' is missing/NaN.*only \['Std', 'Variance'\] may be empty"
    ):
        check_special_values(x, COLS)


def test_transform_before_fit_is_a_usage_error() -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(\)"):
        Preprocessor(input_columns=tuple(COLS)).transform(_rows())


def test_state_round_trips_through_json_dict() -> None:
    import json

    x = _rows()
    pre = Preprocessor(input_columns=tuple(COLS), log_columns=("Rate",)).fit(x)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(pre.transform(x), again.transform(x))


def test_blockwise_fit_and_row_selection_equal_whole_array(monkeypatch) -> None:
    import iomt_ids.data.preprocess as pp

    x = _rows(300)
    x[5, COLS.index("Rate")] = np.inf
    x[7, COLS.index("Std")] = np.nan
    rows = np.arange(0, 300, 3)
    whole = Preprocessor(input_columns=tuple(COLS)).fit(x[rows])
    monkeypatch.setattr(pp, "_BLOCK", 16)  # many blocks
    blocked = Preprocessor(input_columns=tuple(COLS)).fit(x, rows=rows)
    assert blocked.kept_columns_ == whole.kept_columns_ and blocked.inf_caps_ == whole.inf_caps_
    np.testing.assert_allclose(blocked.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(blocked.scale_, whole.scale_, rtol=1e-9)
    np.testing.assert_array_equal(blocked.transform(x, rows=rows), whole.transform(x[rows]))
    bad = x.copy()
    bad[200, COLS.index("Min")] = np.nan
    with pytest.raises(BadValueError, match="first at row 200"):
        blocked.transform(bad)


def test_polars_table_input_equals_the_array(monkeypatch) -> None:
    import polars as pl

    import iomt_ids.data.preprocess as pp
    from iomt_ids.exceptions import SchemaError

    x = _rows(300)
    x[5, COLS.index("Rate")] = np.inf
    table = pl.DataFrame(x, schema=COLS, orient="row").with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("Std")).alias("Std")  # an empty cell
    )
    x[7, COLS.index("Std")] = np.nan
    rows = np.arange(1, 300, 2)
    monkeypatch.setattr(pp, "_BLOCK", 32)
    from_array = Preprocessor(input_columns=tuple(COLS)).fit(x, rows=rows)
    from_table = Preprocessor(input_columns=tuple(COLS)).fit(table, rows=rows)
    assert (
        from_table.inf_caps_ == from_array.inf_caps_ and from_table.kept_columns_ == from_array.kept_columns_
    )
    np.testing.assert_array_equal(from_table.mean_, from_array.mean_)
    np.testing.assert_array_equal(from_table.transform(table), from_array.transform(x))
    np.testing.assert_array_equal(
        from_table.transform(table, rows=rows[::-1]), from_array.transform(x[rows[::-1]])
    )
    with pytest.raises(SchemaError, match="in this order"):
        from_table.transform(table.select(reversed(COLS)))
    bad = table.with_columns(
        pl.when(pl.int_range(pl.len()) == 40).then(None).otherwise(pl.col("Min")).alias("Min")
    )
    with pytest.raises(BadValueError, match="first at row 40"):
        from_table.transform(bad)


def test_refit_replaces_the_cached_column_plan() -> None:
    """The cleaning plan (caps, kept columns) is cached; a second fit must not reuse the first one's."""
    cols = list(V2_COLUMNS)
    a = synthetic_rows("v2", 200, seed=1)[cols].to_numpy()
    b = synthetic_rows("v2", 200, seed=2)[cols].to_numpy() * 5.0
    row = a[:1].copy()
    row[0, cols.index("Rate")] = np.inf  # capped at the fitted maximum of Rate
    row[0, cols.index("Std")] = np.nan  # filled
    pre = Preprocessor(cols, log_columns=("Rate",))
    first = pre.fit(a).transform(row)
    second = pre.fit(b).transform(row)
    fresh = Preprocessor(cols, log_columns=("Rate",)).fit(b).transform(row)
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first, second)
    j = pre.kept_columns_.index("Rate")
    cap = np.log1p(b[:, cols.index("Rate")].max())
    assert second[0, j] == np.float32((cap - pre.mean_[j]) / pre.scale_[j])
