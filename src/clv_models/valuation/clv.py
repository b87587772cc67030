"""Customer lifetime value over a horizon, in monthly steps, for daily and weekly models alike.

    CLV(H) = margin · E[M | x, m̄] · Σ_{k=1}^{K} [E[Y(t_k)] − E[Y(t_{k−1})]] / (1 + d)^{t_k / year}

with t_k = min(k · month, H) in the model's unit (a month is 30.4375 days, a year 365.25 days),
K = ⌈H / month⌉, E[Y(t)] the BG/NBD conditional expected purchases (FHL 2005, eq. 10),
E[M] the Gamma-Gamma conditional mean spend (Fader & Hardie note 025, eq. 5), d the annual
discount rate and the margin a share of revenue. Each month's purchases are discounted at the
end of that month. Units: currency of the orders.

Unlike lifetimes' ``customer_lifetime_value`` (which takes 30 periods per month whatever the
unit, and evaluates E[Y] twice per month), the same horizon gives the same money for a daily
and a weekly model. The E[Y] bracket depends on (x, T) only, so the discounted monthly sum is
formed once per distinct (x, T) pair and multiplied by each customer's P(alive).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from clv_models.errors import ClvInputError
from clv_models.timeunits import DAYS_PER_UNIT, Horizon, parse_horizon

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.models import BetaGeoModel, GammaGammaModel

def monthly_steps(horizon: Horizon, unit: str, days_per_month: float = DAYS_PER_UNIT["M"]) -> np.ndarray:
    """End of each monthly step, in model units; the last step is cut at the horizon."""
    total_days = horizon.days if horizon.unit != "M" else horizon.value * days_per_month
    count = int(np.ceil(total_days / days_per_month - 1e-9))
    days = np.minimum(np.arange(1, count + 1) * days_per_month, total_days)
    return days / DAYS_PER_UNIT[unit]


def customer_lifetime_value(
    purchases: BetaGeoModel,
    spend: GammaGammaModel,
    rfm: pd.DataFrame,
    *,
    horizon: str | Horizon = "12M",
    annual_discount_rate: float = 0.10,
    margin: float = 1.0,
    days_per_month: float = DAYS_PER_UNIT["M"],
) -> np.ndarray:
    """Expected discounted margin per customer over ``horizon`` (currency).

    ``days_per_month`` exists only to reproduce tools that use 30-day months; keep the default.
    """
    if annual_discount_rate < 0:
        raise ClvInputError(f"annual discount rate must be ≥ 0, got {annual_discount_rate}")
    if not 0 < margin <= 1:
        raise ClvInputError(f"margin must be a share of revenue in (0, 1], got {margin}")
    if purchases.unit_ != spend.unit_:
        raise ClvInputError(
            f"purchase model unit {purchases.unit_!r} and spend model unit {spend.unit_!r} differ"
        )
    steps = monthly_steps(parse_horizon(horizon), purchases.unit_, days_per_month)
    # Discount by elapsed months / 12 (= elapsed days / 365.25 with the default month length).
    years = steps * DAYS_PER_UNIT[purchases.unit_] / days_per_month / 12
    discount = (1.0 + annual_discount_rate) ** (-years)
    purchases_value = purchases.discounted_expected_purchases(rfm, steps, discount)
    return margin * spend.expected_order_value(rfm) * purchases_value
