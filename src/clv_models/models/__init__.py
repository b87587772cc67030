"""Estimators with the scikit-learn contract: BG/NBD purchases, Gamma-Gamma spend."""

from clv_models.models._mle import ConvergenceWarning
from clv_models.models.bgnbd import BetaGeoModel
from clv_models.models.gamma_gamma import GammaGammaModel

__all__ = ["BetaGeoModel", "GammaGammaModel", "ConvergenceWarning"]
