"""Features from canonical orders: RFM summary and calibration/holdout split."""

from clv_models.features.rfm import calibration_holdout, rfm_summary

__all__ = ["rfm_summary", "calibration_holdout"]
