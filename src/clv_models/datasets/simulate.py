"""Simulated shop exports whose futures are known.

:func:`simulate_orders` writes what a shop's order export looks like - invoice lines with a
customer id, an invoice id, a timestamp, a product, a quantity and a unit price, credit notes,
duplicated lines, guest checkouts - from a purchase process whose latent state is kept: every
customer's purchase rate, drop-out probability and drop-out time, and their purchases in a window
after the cutoff. Models can then be checked against the truth, not only against a holdout.

The model (per customer, all draws vectorised with numpy, seeded by ``(seed, n_customers)``)
-----------------------------------------------------------------------------------------------

* **Acquisition**: the first purchase falls in the observation period ``[start, start + days)``,
  uniformly in *operational time* (see the season below: more customers arrive in the high season).
* **Repeat buying** (Pareto/NBD, BG/NBD): purchase rate ``λ ~ Gamma(rate_shape, mean rate_mean)``
  per day. Gaps between purchases are ``Gamma(regularity, mean 1/λ)`` in operational time:
  ``regularity = 1`` is the Poisson process of the BTYD models; larger values make a customer's
  gaps regular (Platzer & Reutterer's Pareto/GGG), as in a weekly grocery shop.
* **Drop-out** (MBG/NBD-like): ``p ~ Beta(dropout_a, dropout_b)``; after each purchase, the first
  included, the customer leaves for good with probability ``p``. So a customer makes
  ``J = min(Geometric(p), max_purchases)`` purchases in all and is inactive from the moment of the
  J-th. Unlike BG/NBD, a customer may leave right after the first purchase.
* **Season**: every customer's rate is multiplied by ``s(t) = 1 + season·cos(2π(t − peak)/365.25)``
  (``peak`` a day of the year; mean 1 over a year). Gaps are drawn in operational time
  ``Λ(t) = ∫ s`` and mapped back to calendar time (Λ is inverted by a bracketed Newton method).
* **Money**: a customer's log mean order value ``~ Normal(spend_log_mean, spend_log_sd)``; an
  order's total ``= exp(that + Normal(0, order_log_sd))`` rounded to cents. The total is split over
  ``1 + Poisson(lines_per_order − 1)`` lines of distinct products with quantities
  ``1 + Poisson(units_per_line − 1)``; unit prices are the line's share of the total divided by
  its quantity, rounded to cents (so the lines add up to the total within a few cents).
* **Export artefacts**: credit notes (a share ``return_share`` of the multi-line purchases gets one:
  its last line with a negative quantity, on its own invoice ``C…``, dated after the purchase and
  before the customer's next purchase, so that ingestion nets it into that purchase
  (docs/decisions.md D3); a return never empties an order, so every simulated purchase stays a
  purchase; the credit note of a purchase made shortly before the cutoff may fall in the future
  window); exact duplicate lines (each line repeated with probability ``duplicate_share``); guest
  checkouts (extra invoices without a customer id, a share ``guest_share`` of all invoices).

Invoice ids are numbered in time order (``O0000000000``, credit notes ``C…``), customer ids are
``C00000000`` …; times have second resolution. ``.orders`` holds the lines dated up to the end of
day ``end`` (the cutoff), ``.future`` those of the next ``future_days`` days: the same customers
only (no one is acquired after the cutoff), plus guests, credit notes and duplicates of that window.

Profiles (:data:`PROFILES`): ``retail`` (the process of ``benchmarks/bench_churn.py``, with a
Christmas season and artefacts), ``weekly_grocery`` (a purchase about every week, regular gaps),
``one_time`` (most customers buy once; months between purchases), ``wholesale`` (few, large,
regular orders), ``seasonal`` (three years with a strong winter peak). ``days=270`` (any
``days``) gives a short history.

Cost grows with the lines, not the customers (measured with the default windows, 2 cores under
load): ``retail`` 11.5 lines per customer, 100,000 customers in 1-2 s (0.4 GB peak); ``one_time``
3.3 and ``seasonal`` 12 lines per customer, alike; ``weekly_grocery`` 186 lines per customer, 10,000
customers in 2 s, 100,000 in 30 s and 3.9 GB; ``wholesale`` 302 lines per customer, 10,000 in 3 s
(100,000 wholesale customers, 30 million lines, take 34 s and 5 GB).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from clv_models.config import ColumnMap

SECONDS_PER_DAY = 86_400
YEAR_DAYS = 365.25
#: Columns of a simulated export, in order.
EXPORT_COLUMNS = ("invoice_id", "invoice_ts", "customer_id", "country", "sku", "category", "quantity", "unit_price")
#: ``--columns`` for a simulated export (``ColumnMap.parse`` reads it); amount = quantity × unit_price.
SIMULATED_COLUMNS = (
    "customer_id=customer_id,order_id=invoice_id,order_ts=invoice_ts,quantity=quantity,"
    "unit_price=unit_price,country=country,category=category"
)
# With a cap this small, every customer's whole lifetime of gaps is drawn in one call (what
# benchmarks/bench_churn.py always did); above it, gaps are drawn in rounds up to the horizon.
_FULL_DRAW_LIMIT = 1_000
_N_PRODUCTS = 997  # more than the lines of any basket (<= 100): products (first + k) mod 997 are distinct
_SKU_BASE = 10_000

_RETAIL_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "BE", "AT", "SE", "PL")
_GIFT_CATEGORIES = ("home", "kitchen", "toys", "garden", "stationery", "gifts", "lighting", "textiles")


class SimulationSettingsError(ClvInputError, ValueError):
    """An argument of :func:`simulate_orders` out of its range (one line naming it and the range)."""


@dataclass(frozen=True)
class ShopProfile:
    """Parameters of one shop's purchase process (the model: the module docstring).

    Attributes:
        name, description: what :data:`PROFILES` calls it, and one line about the shop.
        start, days: first day and length (days) of the observation period.
        rate_shape, rate_mean: purchase rate λ ~ Gamma(shape, mean) per day (at the season's mean).
        regularity: shape k of the Gamma gaps between purchases (1 = Poisson purchasing).
        dropout_a, dropout_b: drop-out probability per purchase p ~ Beta(a, b).
        max_purchases: cap on a customer's purchases in all.
        season, season_peak: amplitude (0 to 0.95) and peak day of the year (1-366) of the
            yearly multiplicative season on purchase rates.
        spend_log_mean, spend_log_sd, order_log_sd: customers' log mean order value ~
            Normal(mean, sd); an order's log total = the customer's + Normal(0, order_log_sd).
        lines_per_order, units_per_line: mean lines per invoice and units per line (each ≥ 1).
        return_share, return_delay_days: share of multi-line purchases with a credit note, and the
            mean delay (Exponential) before it.
        duplicate_share: chance that a line is exported twice.
        guest_share: share of all invoices that are guest checkouts (no customer id).
        countries, categories: codes; customers' countries have Zipf shares in this order.

    Make a variant with ``dataclasses.replace(PROFILES["retail"], rate_mean=1 / 30)`` and pass it as
    ``profile``.
    """

    name: str
    description: str
    start: dt.date
    days: int
    rate_shape: float
    rate_mean: float
    regularity: float
    dropout_a: float
    dropout_b: float
    max_purchases: int
    season: float
    season_peak: int
    spend_log_mean: float
    spend_log_sd: float
    order_log_sd: float
    lines_per_order: float
    units_per_line: float
    return_share: float
    return_delay_days: float
    duplicate_share: float
    guest_share: float
    countries: tuple[str, ...] = _RETAIL_COUNTRIES
    categories: tuple[str, ...] = _GIFT_CATEGORIES

    def check(self) -> None:
        """Raise :class:`SimulationSettingsError` for a parameter outside its range."""
        rules: list[tuple[str, bool, str]] = [
            ("days", self.days >= 1, ">= 1"),
            ("rate_shape", self.rate_shape > 0, "> 0"),
            ("rate_mean", self.rate_mean > 0, "> 0"),
            ("regularity", self.regularity > 0, "> 0"),
            ("dropout_a", self.dropout_a > 0, "> 0"),
            ("dropout_b", self.dropout_b > 0, "> 0"),
            ("max_purchases", self.max_purchases >= 1, ">= 1"),
            ("season", 0.0 <= self.season <= 0.95, "in [0, 0.95]"),
            ("season_peak", 1 <= self.season_peak <= 366, "in [1, 366]"),
            ("spend_log_sd", self.spend_log_sd >= 0, ">= 0"),
            ("order_log_sd", self.order_log_sd >= 0, ">= 0"),
            ("lines_per_order", 1.0 <= self.lines_per_order <= 100.0, "in [1, 100]"),
            ("units_per_line", self.units_per_line >= 1.0, ">= 1"),
            ("return_share", 0.0 <= self.return_share <= 1.0, "in [0, 1]"),
            ("return_delay_days", self.return_delay_days > 0, "> 0"),
            ("duplicate_share", 0.0 <= self.duplicate_share <= 0.5, "in [0, 0.5]"),
            ("guest_share", 0.0 <= self.guest_share <= 0.5, "in [0, 0.5]"),
            ("countries", len(self.countries) >= 1, "not empty"),
            ("categories", len(self.categories) >= 1, "not empty"),
        ]
        for name, ok, allowed in rules:
            if not ok:
                raise SimulationSettingsError(
                    f"simulate_orders: {name}={getattr(self, name)!r} is out of range; it must be {allowed}"
                )

    @property
    def mean_dropout(self) -> float:
        """E[p], the mean drop-out probability per purchase."""
        return self.dropout_a / (self.dropout_a + self.dropout_b)


_D = dt.date
PROFILES: Mapping[str, ShopProfile] = MappingProxyType(
    {
        profile.name: profile
        for profile in (
            ShopProfile(
                name="retail",
                description="online gift shop: a purchase every ~50 days, many leave soon, mild Christmas season",
                start=_D(2023, 1, 1), days=730,
                rate_shape=2.0, rate_mean=1 / 50, regularity=1.0, dropout_a=2.0, dropout_b=5.0, max_purchases=200,
                season=0.25, season_peak=330,
                spend_log_mean=3.5, spend_log_sd=0.6, order_log_sd=0.5, lines_per_order=2.5, units_per_line=2.0,
                return_share=0.05, return_delay_days=10.0, duplicate_share=0.005, guest_share=0.10,
            ),
            ShopProfile(
                name="weekly_grocery",
                description="grocery delivery: about one basket a week, regular gaps, customers stay for years",
                start=_D(2023, 1, 1), days=730,
                rate_shape=8.0, rate_mean=1 / 8.2, regularity=4.0, dropout_a=1.5, dropout_b=150.0,
                max_purchases=100_000, season=0.1, season_peak=355,
                spend_log_mean=3.7, spend_log_sd=0.35, order_log_sd=0.3, lines_per_order=3.0, units_per_line=1.5,
                return_share=0.01, return_delay_days=2.0, duplicate_share=0.003, guest_share=0.02,
                countries=("DE",),
                categories=("produce", "dairy", "bakery", "meat", "frozen", "drinks", "household", "snacks"),
            ),
            ShopProfile(
                name="one_time",
                description="web shop of durable goods: most customers buy once, months between purchases",
                start=_D(2023, 1, 1), days=730,
                rate_shape=1.5, rate_mean=1 / 120, regularity=1.0, dropout_a=3.0, dropout_b=2.0, max_purchases=200,
                season=0.3, season_peak=330,
                spend_log_mean=4.2, spend_log_sd=0.7, order_log_sd=0.5, lines_per_order=1.5, units_per_line=1.2,
                return_share=0.08, return_delay_days=14.0, duplicate_share=0.005, guest_share=0.20,
                categories=("furniture", "lighting", "appliances", "outdoor", "decor", "bedding"),
            ),
            ShopProfile(
                name="wholesale",
                description="wholesaler: trade customers (simulate hundreds), large regular baskets every ~3 weeks",
                start=_D(2023, 1, 1), days=730,
                rate_shape=8.0, rate_mean=1 / 21, regularity=3.0, dropout_a=1.2, dropout_b=50.0,
                max_purchases=100_000, season=0.2, season_peak=290,
                spend_log_mean=6.5, spend_log_sd=0.6, order_log_sd=0.35, lines_per_order=12.0, units_per_line=24.0,
                return_share=0.10, return_delay_days=7.0, duplicate_share=0.01, guest_share=0.0,
                countries=("GB", "DE", "FR", "NL", "IE", "BE", "ES", "CH", "NO", "IT", "SE", "DK"),
            ),
            ShopProfile(
                name="seasonal",
                description="seasonal gift shop: three years, most purchases in November-December",
                start=_D(2022, 1, 1), days=1096,
                rate_shape=2.0, rate_mean=1 / 60, regularity=1.0, dropout_a=2.0, dropout_b=8.0, max_purchases=200,
                season=0.85, season_peak=344,
                spend_log_mean=3.8, spend_log_sd=0.6, order_log_sd=0.5, lines_per_order=2.0, units_per_line=1.5,
                return_share=0.06, return_delay_days=10.0, duplicate_share=0.005, guest_share=0.10,
            ),
        )
    }
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class SimulatedShop:
    """The result of :func:`simulate_orders`.

    Attributes:
        orders: the raw export of the observation period, lines dated up to the end of ``end``
            (columns :data:`EXPORT_COLUMNS`; ``customer_id`` missing for guest checkouts).
        future: the same export for the ``future_days`` after ``end``.
        truth: one row per customer (see :func:`simulate_orders`).
        end: the cutoff: the last observed day (pass it as ``--as-of``).
        columns: the ``--columns`` mapping of the export (:data:`SIMULATED_COLUMNS`).
        profile: the parameters used (with the overrides applied).
        seed: the seed.
        future_days: length of the future window in days.
    """

    orders: pd.DataFrame
    future: pd.DataFrame
    truth: pd.DataFrame
    end: dt.date
    columns: str
    profile: ShopProfile
    seed: int
    future_days: int

    @property
    def start(self) -> dt.date:
        """The first day of the observation period."""
        return self.profile.start

    def column_map(self) -> ColumnMap:
        """``columns`` as a ``ColumnMap`` for ``clv_models.data.ingest``."""
        from clv_models.config import ColumnMap

        return ColumnMap.parse(self.columns)

    def write(self, path: str | Path, *, which: Literal["orders", "future", "all"] = "orders") -> Path:
        """Write the observation export (``which="orders"``), the future window's, or both in time
        order (``"all"``) to ``path``, Parquet or CSV by its extension, atomically. Returns the path."""
        import pandas as pd

        from clv_models.data.io import write_frame_atomic

        frames = {"orders": self.orders, "future": self.future}
        if which == "all":
            frame = pd.concat([self.orders, self.future], ignore_index=True)
        elif which in frames:
            frame = frames[which]
        else:
            raise SimulationSettingsError(f"write: which={which!r}; use 'orders', 'future' or 'all'")
        return write_frame_atomic(frame, path, what="the simulated orders")


def simulate_orders(
    n_customers: int,
    *,
    seed: int,
    profile: str | ShopProfile = "retail",
    start: dt.date | str | None = None,
    days: int | None = None,
    future_days: int = 365,
    season: float | None = None,
    return_share: float | None = None,
    duplicate_share: float | None = None,
    guest_share: float | None = None,
    lines_per_order: float | None = None,
    units_per_line: float | None = None,
) -> SimulatedShop:
    """Simulate a shop's raw order export with a known future (model: the module docstring).

    Args:
        n_customers: customers acquired during the observation period (each buys at least once).
        seed: the random stream is ``numpy.random.default_rng([seed, n_customers])``: the same
            arguments give byte-identical frames (and 1,000 customers are not the first 1,000 of
            2,000: the size is part of the seed, as in benchmarks/bench_churn.py).
        profile: a name in :data:`PROFILES` or a :class:`ShopProfile`.
        start: first day of the observation period (default: the profile's).
        days: length of the observation period in days (default: the profile's; e.g. 270 for a
            short history). ``end`` is its last day.
        future_days: length of the window after ``end`` whose orders are returned in ``.future``.
        season: amplitude of the yearly season on purchase rates, 0 (none) to 0.95.
        return_share, duplicate_share, guest_share, lines_per_order, units_per_line: override
            the profile's export artefacts and basket sizes (``0, 0, 0, 1, 1`` gives one line per
            order and no artefacts: canonical orders).

    Returns:
        A :class:`SimulatedShop`. Its ``truth`` has one row per customer: ``customer_id``,
        ``country``, ``first_purchase_ts``, ``rate_per_day`` (λ, at the season's mean),
        ``regularity``, ``dropout_probability`` (p), ``lifetime_purchases`` (J), ``mean_order_value``
        (expected order total before returns), ``purchases`` (invoices in the observation
        period), ``future_purchases`` (in the future window), ``alive_at_end`` (J-th purchase not
        before the end of the observation period), ``dropout_ts`` (time of the J-th purchase, when
        the customer became inactive; missing if that is after the future window),
        ``p_future_purchase`` (probability of at least one purchase in the future window given
        the latent state at the cutoff: exact for every profile) and ``expected_future_purchases``
        (expected purchases in the future window given that state: exact when ``regularity`` is 1,
        missing otherwise). Guest checkouts belong to no customer and are not in ``truth``.
    """
    import numpy as np

    spec = _resolve_profile(
        profile, start=start, days=days, season=season, return_share=return_share,
        duplicate_share=duplicate_share, guest_share=guest_share, lines_per_order=lines_per_order,
        units_per_line=units_per_line,
    )  # fmt: skip
    if not isinstance(n_customers, (int, np.integer)) or isinstance(n_customers, bool) or n_customers < 1:
        raise SimulationSettingsError(f"simulate_orders: n_customers={n_customers!r}; it must be an integer >= 1")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SimulationSettingsError(f"simulate_orders: seed={seed!r}; it must be an integer >= 0")
    if not isinstance(future_days, (int, np.integer)) or future_days < 0:
        raise SimulationSettingsError(f"simulate_orders: future_days={future_days!r}; it must be an integer >= 0")
    n, seed, future_days = int(n_customers), int(seed), int(future_days)
    rng = np.random.default_rng([seed, n])
    clock = _SeasonClock(spec.season, spec.season_peak, spec.start)
    obs_days, horizon_days = float(spec.days), float(spec.days + future_days)
    obs_u, horizon_u = clock.forward(obs_days), clock.forward(horizon_days)

    # 1. Customers and their purchase times (this draw order is benchmarks/bench_churn.py's).
    first_u = rng.random(n) * obs_u
    rate = rng.gamma(spec.rate_shape, spec.rate_mean / spec.rate_shape, n)
    dropout = rng.beta(spec.dropout_a, spec.dropout_b, n)
    lifetime = np.minimum(rng.geometric(dropout), spec.max_purchases)
    owner, seq, u = _purchase_clock(rng, first_u, rate, lifetime, spec.regularity, horizon_u,
                                    draw_all=spec.max_purchases <= _FULL_DRAW_LIMIT)  # fmt: skip
    kept = u < horizon_u  # purchases after the horizon are never looked at
    owner, seq, u = owner[kept], seq[kept], u[kept]
    day = clock.inverse(u)
    if spec.season > 0:  # the inversion's rounding must not push a first purchase past the cutoff
        day = np.where(seq == 0, np.minimum(day, obs_days - 1e-6), day)
    in_horizon = day < horizon_days
    owner, seq, u, day = owner[in_horizon], seq[in_horizon], u[in_horizon], day[in_horizon]
    observed = day < obs_days
    seconds = (day * SECONDS_PER_DAY).astype(np.int64)
    seconds = np.minimum(seconds, np.where(observed, spec.days, spec.days + future_days) * SECONDS_PER_DAY - 1)

    # 2. Money (again bench_churn's order: countries, customers' means, observed orders' totals).
    country = _zipf_choice(rng, len(spec.countries), n)
    log_mean = rng.normal(spec.spend_log_mean, spec.spend_log_sd, n)
    total = np.empty(owner.size)
    total[observed] = rng.normal(0.0, spec.order_log_sd, int(observed.sum()))
    total[~observed] = rng.normal(0.0, spec.order_log_sd, int((~observed).sum()))
    total = np.maximum(np.round(np.exp(log_mean[owner] + total), 2), 0.01)

    # 3. Guest checkouts: extra invoices without a customer, spread like purchases over the horizon.
    n_guests = int(rng.poisson(spec.guest_share / (1.0 - spec.guest_share) * owner.size)) if spec.guest_share else 0
    guest_day = clock.inverse(rng.random(n_guests) * horizon_u)
    guest_seconds = np.minimum((guest_day * SECONDS_PER_DAY).astype(np.int64),
                               (spec.days + future_days) * SECONDS_PER_DAY - 1)  # fmt: skip
    guest_country = _zipf_choice(rng, len(spec.countries), n_guests)
    guest_sd = math.hypot(spec.spend_log_sd, spec.order_log_sd)
    guest_total = np.maximum(np.round(np.exp(rng.normal(spec.spend_log_mean, guest_sd, n_guests)), 2), 0.01)

    # 4. Invoices (customers' purchases in (customer, purchase) order, then guests) and their lines.
    inv_seconds = np.concatenate([seconds, guest_seconds])
    inv_customer = np.concatenate([owner, np.full(n_guests, -1)])
    inv_country = np.concatenate([country[owner], guest_country])
    inv_total = np.concatenate([total, guest_total])
    lines = _basket_lines(rng, spec, inv_total)

    # 5. Credit notes: the last line of a multi-line purchase, before the customer's next purchase.
    credit = _credit_notes(rng, spec, owner, seconds, lines, (spec.days + future_days) * SECONDS_PER_DAY)

    truth = _truth(
        spec, clock, n=n, owner=owner, seq=seq, u=u, seconds=seconds, observed=observed, rate=rate,
        dropout=dropout, lifetime=lifetime, country=country, log_mean=log_mean, obs_u=obs_u, horizon_u=horizon_u,
    )  # fmt: skip

    # 6. Number every invoice in time order and lay the lines out invoice by invoice.
    n_inv, n_credit = inv_seconds.size, credit["seconds"].size
    doc_seconds = np.concatenate([inv_seconds, credit["seconds"]])
    by_time = np.argsort(doc_seconds, kind="stable")  # invoice number k is document by_time[k]
    doc_number = np.empty(doc_seconds.size, dtype=np.int64)
    doc_number[by_time] = np.arange(doc_seconds.size)
    doc_first_line = np.concatenate([lines["starts"], lines["invoice"].size + np.arange(n_credit)])
    doc_n_lines = np.concatenate([lines["n_lines"], np.ones(n_credit, dtype=np.int64)])
    count = doc_n_lines[by_time]
    out_start = np.cumsum(count) - count
    layout = np.arange(int(count.sum())) - np.repeat(out_start - doc_first_line[by_time], count)
    del count, out_start, doc_first_line, doc_n_lines, by_time
    if spec.duplicate_share > 0:  # an export artefact: an exact copy right after the line
        layout = np.repeat(layout, 1 + (rng.random(layout.size) < spec.duplicate_share))
    table = _export_table(
        spec,
        n_customers=n,
        layout=layout,
        line_doc=np.concatenate([lines.pop("invoice"), n_inv + np.arange(n_credit)]),
        product=np.concatenate([lines.pop("product"), credit["product"]]),
        quantity=np.concatenate([lines.pop("quantity"), credit["quantity"]]),
        unit_price=np.concatenate([lines.pop("unit_price"), credit["unit_price"]]),
        doc_seconds=doc_seconds,
        doc_number=doc_number,
        doc_is_credit=np.arange(doc_seconds.size) >= n_inv,
        doc_customer=np.concatenate([inv_customer, credit["customer"]]),
        doc_country=np.concatenate([inv_country, country[credit["customer"]]]),
    )
    del lines, layout
    # Lines are in time order: the observed ones first.
    split = int(np.searchsorted(table.column("invoice_ts").to_numpy(), _timestamp(spec.start, spec.days)))
    orders = table.slice(0, split).to_pandas()
    future = table.slice(split).to_pandas()
    del table

    end = spec.start + dt.timedelta(days=spec.days - 1)
    return SimulatedShop(orders=orders, future=future, truth=truth, end=end, columns=SIMULATED_COLUMNS,
                         profile=spec, seed=seed, future_days=future_days)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Pieces


def _resolve_profile(profile: str | ShopProfile, **overrides: Any) -> ShopProfile:
    if isinstance(profile, ShopProfile):
        spec = profile
    elif isinstance(profile, str) and profile in PROFILES:
        spec = PROFILES[profile]
    else:
        raise SimulationSettingsError(
            f"simulate_orders: unknown profile {profile!r}; profiles are: {', '.join(PROFILES)} (or pass a ShopProfile)"
        )
    changes = {name: value for name, value in overrides.items() if value is not None}
    if isinstance(changes.get("start"), str):
        try:
            changes["start"] = dt.date.fromisoformat(changes["start"])
        except ValueError:
            raise SimulationSettingsError(
                f"simulate_orders: start={changes['start']!r} is not a date (YYYY-MM-DD)"
            ) from None
    if isinstance(changes.get("start"), dt.datetime):
        changes["start"] = changes["start"].date()
    if "days" in changes and (not isinstance(changes["days"], int) or isinstance(changes["days"], bool)):
        raise SimulationSettingsError(f"simulate_orders: days={changes['days']!r}; it must be an integer >= 1")
    spec = dataclasses.replace(spec, **changes)
    spec.check()
    return spec


class _SeasonClock:
    """Operational time Λ(t) = ∫₀ᵗ s(x) dx of the season s(x) = 1 + A·cos(2π(x − c)/365.25), with
    t in days since the start and c the days from the start to a peak. Λ(t) − t stays within
    ±2A·365.25/(2π), and Λ' = s ≥ 1 − A > 0, so Λ is strictly increasing and invertible."""

    def __init__(self, amplitude: float, peak_day_of_year: int, start: dt.date) -> None:
        self.amplitude = float(amplitude)
        self.omega = 2.0 * math.pi / YEAR_DAYS
        self.shift = float(peak_day_of_year - start.timetuple().tm_yday)
        self.offset = math.sin(-self.omega * self.shift)

    def forward(self, t: Any) -> Any:
        if self.amplitude == 0.0:
            return t
        import numpy as np

        return t + self.amplitude / self.omega * (np.sin(self.omega * (t - self.shift)) - self.offset)

    def intensity(self, t: Any) -> Any:
        import numpy as np

        return 1.0 + self.amplitude * np.cos(self.omega * (t - self.shift))

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """t with Λ(t) = u (to 1e-9 days): Newton steps, bisection when a step leaves the bracket."""
        if self.amplitude == 0.0:
            return u
        import numpy as np

        width = 2.0 * self.amplitude / self.omega + 1e-6
        t = np.array(u, dtype=float)
        lo, hi = t - width, t + width
        todo = np.arange(t.size)
        for _ in range(200):
            if todo.size == 0:
                break
            tt, target = t[todo], u[todo]
            f = self.forward(tt) - target
            done = np.abs(f) <= 1e-9
            low = np.where(f < 0, tt, lo[todo])
            high = np.where(f > 0, tt, hi[todo])
            step = tt - f / self.intensity(tt)
            step = np.where((step < low) | (step > high), 0.5 * (low + high), step)
            t[todo] = np.where(done, tt, step)
            lo[todo], hi[todo] = low, high
            todo = todo[~done]
        return t


def _zipf_choice(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    """Indices 0..k-1 with shares proportional to 1, 1/2, 1/3, … (bench_churn's countries)."""
    import numpy as np

    shares = 1.0 / np.arange(1, k + 1)
    return rng.choice(k, size, p=shares / shares.sum())


def _needed_gaps(rate: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Gaps to draw so that most customers pass the horizon in one round (mean + 3 sd + 5)."""
    import numpy as np

    mean = rate * np.maximum(remaining, 0.0)
    return np.ceil(1.1 * mean + 3.0 * np.sqrt(mean) + 5.0).astype(np.int64)


def _purchase_clock(
    rng: np.random.Generator,
    first_u: np.ndarray,
    rate: np.ndarray,
    lifetime: np.ndarray,
    regularity: float,
    horizon_u: float,
    *,
    draw_all: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Purchase times in operational time: ``(owner, purchase number, u)`` in (owner, number) order.

    The first purchase is at ``first_u``; then gaps Gamma(regularity, mean 1/rate), until the
    customer's ``lifetime``-th purchase or past ``horizon_u``. With ``draw_all`` every customer's
    ``lifetime`` gaps are drawn in one call and summed exactly as benchmarks/bench_churn.py did."""
    import numpy as np

    def unit_gaps(size: int) -> np.ndarray:
        if regularity == 1.0:
            return rng.exponential(1.0, size)
        return rng.standard_gamma(regularity, size) / regularity

    n = first_u.size
    counts = lifetime if draw_all else np.minimum(lifetime, 1 + _needed_gaps(rate, horizon_u - first_u))
    owner = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts
    gaps = unit_gaps(owner.size) / rate[owner]
    gaps[starts] = 0.0  # the first purchase is at first_u
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts], counts)  # cumulative gaps within each customer
    u = first_u[owner] + elapsed
    seq = np.arange(owner.size) - np.repeat(starts, counts)
    parts = [(owner, seq, u)]
    drawn = counts.astype(np.int64)
    last = u[starts + counts - 1]
    while True:  # further rounds for customers still active and short of the horizon
        who = np.flatnonzero((drawn < lifetime) & (last < horizon_u))
        if who.size == 0:
            break
        more = np.minimum(lifetime[who] - drawn[who], _needed_gaps(rate[who], horizon_u - last[who]))
        o = np.repeat(who, more)
        st = np.cumsum(more) - more
        g = unit_gaps(o.size) / rate[o]
        cs = np.cumsum(g)
        uu = last[o] + (cs - np.repeat(cs[st] - g[st], more))
        parts.append((o, drawn[o] + np.arange(o.size) - np.repeat(st, more), uu))
        drawn[who] += more
        last[who] = uu[st + more - 1]
    if len(parts) == 1:
        return owner, seq, u
    owner, seq, u = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    order = np.lexsort((seq, owner))
    return owner[order], seq[order], u[order]


def _basket_lines(rng: np.random.Generator, spec: ShopProfile, total: np.ndarray) -> dict[str, np.ndarray]:
    """Lines of each invoice: distinct products, quantities, unit prices that add up to ``total``."""
    import numpy as np

    n_inv = total.size
    if spec.lines_per_order > 1.0:
        n_lines = 1 + np.minimum(rng.poisson(spec.lines_per_order - 1.0, n_inv), 99)
    else:
        n_lines = np.ones(n_inv, dtype=np.int64)
    invoice = np.repeat(np.arange(n_inv), n_lines)
    starts = np.cumsum(n_lines) - n_lines
    line_no = np.arange(invoice.size) - np.repeat(starts, n_lines)
    weight = rng.standard_exponential(invoice.size)
    if n_inv:
        weight /= np.repeat(np.add.reduceat(weight, starts), n_lines)  # shares of the total: 1 for one line
    if spec.units_per_line > 1.0:
        quantity = 1 + rng.poisson(spec.units_per_line - 1.0, invoice.size)
    else:
        quantity = np.ones(invoice.size, dtype=np.int64)
    first_product = _zipf_choice(rng, _N_PRODUCTS, n_inv)
    product = (first_product[invoice] + line_no) % _N_PRODUCTS
    unit_price = np.maximum(np.round(total[invoice] * weight / quantity, 2), 0.01)
    return {
        "invoice": invoice, "line_no": line_no, "n_lines": n_lines, "starts": starts, "product": product,
        "quantity": quantity.astype(np.int64), "unit_price": unit_price,
    }  # fmt: skip


def _credit_notes(
    rng: np.random.Generator,
    spec: ShopProfile,
    owner: np.ndarray,
    seconds: np.ndarray,
    lines: dict[str, np.ndarray],
    horizon_seconds: int,
) -> dict[str, np.ndarray]:
    """One credit note for a share of the customers' multi-line purchases (index i of ``owner``):
    the purchase's last line with a negative quantity, dated at least a second after the purchase
    and before the customer's next purchase (so D3's netting finds this purchase)."""
    import numpy as np

    empty = {"seconds": np.zeros(0, np.int64), "customer": np.zeros(0, np.int64), "product": np.zeros(0, np.int64),
             "quantity": np.zeros(0, np.int64), "unit_price": np.zeros(0)}  # fmt: skip
    if spec.return_share <= 0 or owner.size == 0:
        return empty
    n = owner.size
    next_seconds = np.full(n, np.iinfo(np.int64).max)
    same = owner[1:] == owner[:-1]  # (owner, number) order: the next row is the next purchase
    next_seconds[:-1][same] = seconds[1:][same]
    room = np.minimum(next_seconds - seconds, np.int64(10**12)) - 1  # seconds strictly before the next one
    chosen = (lines["n_lines"][:n] >= 2) & (rng.random(n) < spec.return_share) & (room >= 1)
    delay = np.ceil(rng.exponential(spec.return_delay_days * SECONDS_PER_DAY, n)).astype(np.int64)
    credit_seconds = seconds + np.clip(delay, 1, np.maximum(room, 1))
    chosen &= credit_seconds < horizon_seconds
    idx = np.flatnonzero(chosen)
    last_line = lines["starts"][idx] + lines["n_lines"][idx] - 1
    return {
        "seconds": credit_seconds[idx], "customer": owner[idx], "product": lines["product"][last_line],
        "quantity": -lines["quantity"][last_line], "unit_price": lines["unit_price"][last_line],
    }  # fmt: skip


def _timestamp(start: dt.date, days: int) -> np.datetime64:
    import numpy as np

    return np.datetime64(start, "us") + np.timedelta64(days, "D")


def _export_table(
    spec: ShopProfile,
    *,
    n_customers: int,
    layout: np.ndarray,
    line_doc: np.ndarray,
    product: np.ndarray,
    quantity: np.ndarray,
    unit_price: np.ndarray,
    doc_seconds: np.ndarray,
    doc_number: np.ndarray,
    doc_is_credit: np.ndarray,
    doc_customer: np.ndarray,
    doc_country: np.ndarray,
) -> pa.Table:
    """The export, one row per ``layout`` entry (an index into the line arrays). Labels are built
    once per invoice, customer and product with pyarrow's string kernels, then taken per line;
    each column is finished before the next starts, to bound memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def padded(prefix: Any, numbers: np.ndarray, width: int) -> pa.Array:
        digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
        return pc.binary_join_element_wise(prefix, digits, "")

    doc = line_doc[layout]
    number = doc_number[doc]  # non-decreasing: taking from arrays in number order reads them in sequence
    by_number = np.empty_like(doc_number)
    by_number[doc_number] = np.arange(doc_number.size)
    line_product = product[layout]
    customer = doc_customer[doc]
    prefixes = pa.array(["O", "C"]).take(pa.array(doc_is_credit[by_number].astype(np.int8)))
    timestamps = np.datetime64(spec.start, "s") + doc_seconds[by_number].astype("timedelta64[s]")
    columns = {
        "invoice_id": padded(prefixes, np.arange(doc_number.size), 10).take(pa.array(number)),
        "invoice_ts": pa.array(timestamps.astype("datetime64[us]"), type=pa.timestamp("us")).take(pa.array(number)),
        "customer_id": padded("C", np.arange(n_customers), 8).take(pa.array(customer, mask=customer < 0)),
        "country": pa.array(spec.countries).take(pa.array(doc_country[doc])),
        "sku": pa.array(np.arange(_N_PRODUCTS) + _SKU_BASE).cast(pa.string()).take(pa.array(line_product)),
        "category": pa.array(spec.categories).take(pa.array(line_product % len(spec.categories))),
        "quantity": pa.array(quantity[layout], type=pa.int64()),
        "unit_price": pa.array(unit_price[layout], type=pa.float64()),
    }
    return pa.table(columns)


def _truth(
    spec: ShopProfile,
    clock: _SeasonClock,
    *,
    n: int,
    owner: np.ndarray,
    seq: np.ndarray,
    u: np.ndarray,
    seconds: np.ndarray,
    observed: np.ndarray,
    rate: np.ndarray,
    dropout: np.ndarray,
    lifetime: np.ndarray,
    country: np.ndarray,
    log_mean: np.ndarray,
    obs_u: float,
    horizon_u: float,
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    from scipy.special import gammainc, gammaincc

    purchases = np.bincount(owner[observed], minlength=n)
    future = np.bincount(owner[~observed], minlength=n)
    in_horizon = purchases + future
    last_row = np.cumsum(in_horizon) - 1  # rows are in (owner, number) order; every customer has one
    first_row = last_row - in_horizon + 1
    dropped = in_horizon >= lifetime  # the J-th purchase happened within the horizon
    dropout_seconds = np.where(dropped, seconds[last_row], -1)
    alive = ~(dropped & (dropout_seconds < spec.days * SECONDS_PER_DAY))
    window = horizon_u - obs_u  # the future window in operational days
    last_obs_u = u[first_row + purchases - 1]

    if spec.regularity == 1.0:
        p_any = 1.0 - np.exp(-rate * window)
        expected = _expected_future_poisson(rate * window, dropout, spec.max_purchases - purchases, gammainc)
    else:  # the next gap is a fresh Gamma gap, already longer than the time since the last purchase
        k = spec.regularity
        waited = np.maximum(obs_u - last_obs_u, 0.0)
        survive_now = gammaincc(k, k * rate * waited)
        survive_end = gammaincc(k, k * rate * (waited + window))
        with np.errstate(divide="ignore", invalid="ignore"):
            p_any = np.where(survive_now > 1e-300, 1.0 - survive_end / survive_now, -np.expm1(-k * rate * window))
        expected = np.full(n, np.nan)
    p_any = np.where(alive, p_any, 0.0)
    expected = np.where(alive, expected, 0.0) if spec.regularity == 1.0 else expected

    base = np.datetime64(spec.start, "s")
    first_ts = (base + seconds[first_row].astype("timedelta64[s]")).astype("datetime64[us]")
    drop_ts = (base + np.maximum(dropout_seconds, 0).astype("timedelta64[s]")).astype("datetime64[us]")
    ids = pc.binary_join_element_wise(
        "C", pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), width=8, padding="0"), ""
    )
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series(ids.to_pandas(), dtype="str"),
            "country": pd.Series(np.asarray(spec.countries, dtype=object)[country], dtype="str"),
            "first_purchase_ts": first_ts,
            "rate_per_day": rate,
            "regularity": np.full(n, float(spec.regularity)),
            "dropout_probability": dropout,
            "lifetime_purchases": lifetime.astype(np.int64),
            "mean_order_value": np.exp(log_mean + 0.5 * spec.order_log_sd**2),
            "purchases": purchases.astype(np.int64),
            "future_purchases": future.astype(np.int64),
            "alive_at_end": alive,
            "dropout_ts": pd.Series(drop_ts).where(dropped),
            "p_future_purchase": p_any,
            "expected_future_purchases": expected,
        }
    )
    return frame


def _expected_future_poisson(mu: np.ndarray, p: np.ndarray, remaining: np.ndarray, gammainc: Any) -> np.ndarray:
    """E[min(M, K)] with M ~ Poisson(mu) purchase opportunities and K = min(Geometric(p), R) the
    purchases left before drop-out (R = the cap minus purchases so far): Σ_{k=1..R} P(M ≥ k)(1−p)^(k−1)
    = (1 − e^(−p·mu))/p − Σ_{k>R} P(M ≥ k)(1−p)^(k−1); P(M ≥ k) is the regularized gammainc(k, mu)."""
    import numpy as np

    full = -np.expm1(-p * mu) / p
    remaining = np.maximum(remaining, 0)
    # The cap can only matter where R is within reach of M.
    near = np.flatnonzero(gammainc(remaining + 1.0, mu) > 1e-16)
    if near.size:
        q = 1.0 - p[near]
        k = remaining[near] + 1.0
        tail = np.zeros(near.size)
        for _ in range(10_000):
            term = gammainc(k, mu[near]) * q ** (k - 1.0)
            tail += term
            if term.max() < 1e-17:
                break
            k += 1.0
        full[near] -= tail
    return full


__all__ = [
    "EXPORT_COLUMNS",
    "PROFILES",
    "SIMULATED_COLUMNS",
    "ShopProfile",
    "SimulatedShop",
    "SimulationSettingsError",
    "simulate_orders",
]
