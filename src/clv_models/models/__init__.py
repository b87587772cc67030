"""Estimators with the scikit-learn contract: BG/NBD purchases, Gamma-Gamma spend, churn classifier,
customer segmenter."""

from clv_models.models._mle import ConvergenceWarning
from clv_models.models.bgnbd import BetaGeoModel
from clv_models.models.churn import ChurnClassifier
from clv_models.models.gamma_gamma import GammaGammaModel
from clv_models.models.mbgnbd import ModifiedBetaGeoModel
from clv_models.models.pnbd import ParetoNBDModel
from clv_models.models.segments import CustomerSegmenter, SegmentNamingWarning

__all__ = [
    "BetaGeoModel",
    "ChurnClassifier",
    "ConvergenceWarning",
    "CustomerSegmenter",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "SegmentNamingWarning",
]
