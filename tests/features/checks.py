"""Assertions shared by the feature tests: the v2 invariants of spec §3."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iomt_ids.features import V2_COLUMNS

FLAG_COUNTS = {
    "ack_count": "ack_flag_number",
    "syn_count": "syn_flag_number",
    "fin_count": "fin_flag_number",
    "rst_count": "rst_flag_number",
}


def assert_v2_invariants(df: pd.DataFrame) -> None:
    """Every row obeys the identities the real CICIoMT2024 v2 rows obey."""
    assert tuple(df.columns) == V2_COLUMNS
    assert all(dt == np.float64 for dt in df.dtypes)
    if df.empty:
        return
    n = df["Number"].to_numpy()
    assert (n >= 1).all() and (n == np.round(n)).all()
    np.testing.assert_array_equal(df["AVG"], df["Tot size"])
    np.testing.assert_allclose(df["Tot sum"], df["AVG"] * n, rtol=1e-12)
    one = n == 1
    assert df.loc[one, ["Std", "Variance"]].isna().all().all()
    multi = ~one
    np.testing.assert_allclose(df.loc[multi, "Variance"], df.loc[multi, "Std"] ** 2, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(df["IPv"], df["LLC"])
    np.testing.assert_allclose(df["IPv"] + df["ARP"], 1.0, rtol=0, atol=1e-12)
    for count, frac in FLAG_COUNTS.items():
        np.testing.assert_allclose(df[count], df[frac] * n, rtol=0, atol=1e-9)
        assert (df[count] == np.round(df[count])).all()
    assert ((df["Min"] <= df["AVG"] + 1e-9) & (df["AVG"] <= df["Max"] + 1e-9)).all()
    assert ((df["Header_Length"] >= 0) & (df["Header_Length"] <= 60)).all()
    assert (df["Rate"] > 0).all()  # finite or +inf, never NaN
    assert (df["Protocol Type"] == np.round(df["Protocol Type"])).all()
    fractions = [c for c in V2_COLUMNS[4:11]] + list(V2_COLUMNS[15:30])
    assert ((df[fractions] >= 0) & (df[fractions] <= 1)).all().all()
