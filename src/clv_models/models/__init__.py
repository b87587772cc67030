"""Estimators with the scikit-learn contract: BG/NBD purchases, Gamma-Gamma spend, churn classifier."""

from clv_models.models._mle import ConvergenceWarning
from clv_models.models.bgnbd import BetaGeoModel
from clv_models.models.churn import ChurnClassifier
from clv_models.models.gamma_gamma import GammaGammaModel

__all__ = ["BetaGeoModel", "ChurnClassifier", "GammaGammaModel", "ConvergenceWarning"]
