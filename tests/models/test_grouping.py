"""Distinct rows and values, by hashing or (whole numbers) by counting: checked against pandas' groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clv_models.models._mle import compress, factorize_rows, group_values, small_integer_codes


def _tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(11)
    n = 5_000
    daily = pd.DataFrame({"x": rng.integers(0, 40, n), "t_x": rng.integers(0, 700, n), "T": rng.integers(1, 731, n)})
    weekly = daily / 7.0  # fractional: hashed
    mixed = daily.assign(T=daily["T"] + 0.5)
    huge = daily.assign(x=daily["x"] * 10**9)  # whole numbers beyond the counting range: hashed
    return {"daily": daily.astype(float), "weekly": weekly, "mixed": mixed.astype(float), "huge": huge.astype(float)}


@pytest.mark.parametrize("name", ["daily", "weekly", "mixed", "huge"])
def test_compress_matches_groupby(name: str) -> None:
    table = _tables()[name]
    columns = {c: table[c].to_numpy() for c in table}
    distinct, counts, codes = compress(columns)
    expected = table.groupby(list(table), sort=False).size()
    assert len(counts) == len(expected) == codes.max() + 1
    # Each distinct row is listed once, in order of first appearance, with its number of rows.
    rebuilt = pd.Series(counts, index=pd.MultiIndex.from_arrays([distinct[c] for c in table]))
    pd.testing.assert_series_equal(rebuilt, expected.astype(float), check_names=False)
    # Every row's code points at a distinct row equal to it.
    for c in table:
        np.testing.assert_array_equal(distinct[c][codes], columns[c])
    codes_again, first = factorize_rows(*columns.values())
    np.testing.assert_array_equal(codes_again, codes)
    np.testing.assert_array_equal(first, table.drop_duplicates().index.to_numpy())


@pytest.mark.parametrize("values", [
    np.array([3.0, 0.0, 3.0, 7.0, 1.0]),  # counted
    np.array([2.5, 0.0, 2.5, 7.0]),  # hashed
    np.array([1e12, 2.0, 1e12]),  # hashed (range)
    np.array([-1.0, 2.0, -1.0]),  # hashed (negative)
])
def test_group_values(values: np.ndarray) -> None:
    weights = np.arange(1.0, len(values) + 1)
    distinct, position, totals = group_values(values, weights)
    np.testing.assert_array_equal(distinct[position], values)
    assert sorted(distinct) == sorted(set(values))
    for value, total in zip(distinct, totals, strict=True):
        assert total == weights[values == value].sum()


def test_small_integer_codes_only_for_small_whole_numbers() -> None:
    np.testing.assert_array_equal(small_integer_codes(np.array([0.0, 5.0, 2.0])), [0, 5, 2])
    for values in ([0.5, 1.0], [np.nan, 1.0], [np.inf, 1.0], [-1.0, 1.0], [1e9, 1.0], []):
        assert small_integer_codes(np.array(values, dtype=float)) is None
