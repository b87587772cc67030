"""Valuation: customer lifetime value (tiers and lifecycle stages come with later issues)."""

from clv_models.valuation.clv import customer_lifetime_value, monthly_steps

__all__ = ["customer_lifetime_value", "monthly_steps"]
