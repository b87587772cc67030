"""The threaded ₂F₁ gives scipy's values bit for bit, whatever the number of threads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import hyp2f1

from clv_models.models import _special


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_threaded_equals_scipy(cores: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_special, "usable_cores", lambda: cores)
    monkeypatch.setattr(_special, "MIN_EVALUATIONS_PER_THREAD", 10)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 60, 1_001).astype(float)
    T = rng.integers(1, 731, 1_001).astype(float)
    t = (np.arange(1, 13) * 30.4375).reshape(-1, 1)
    z = t / (20.0 + T + t)
    grid = (0.25 + x, 2.5 + x, 2.3 + x, z)  # BG/NBD's arguments: (r+x, b+x, a+b+x−1, z), 12 × 1,001
    for args in (grid, (0.25 + x, 2.5 + x, 2.3 + x, z[5]), (0.25, 2.5, 2.3, z)):
        expected = hyp2f1(*args)
        result = _special.hyp2f1_threaded(*args)
        assert result.shape == expected.shape
        np.testing.assert_array_equal(result, expected)
    assert _special.hyp2f1_threaded(0.25, 2.5, 2.3, 0.4) == hyp2f1(0.25, 2.5, 2.3, 0.4)
