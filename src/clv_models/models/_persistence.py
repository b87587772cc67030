"""Parameters-and-metadata persistence shared by the BTYD estimators (no training rows kept)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.utils.validation import check_is_fitted

from clv_models.errors import ClvInputError


class ParametricModelMixin:
    """``to_dict`` / ``from_dict`` for an estimator whose fitted state is a few numbers.

    Subclasses set ``PARAMETER_NAMES`` and may extend ``EXTRA_ATTRIBUTES`` (fitted attributes
    kept besides parameters, errors, likelihood, convergence and unit).
    """

    PARAMETER_NAMES: ClassVar[tuple[str, ...]] = ()
    EXTRA_ATTRIBUTES: ClassVar[tuple[str, ...]] = ("n_customers",)

    def _store_fit(
        self,
        result: Any,
        log_likelihood: float,
        total_hessian: np.ndarray,
        unit: str,
        n_customers: float,
    ) -> None:
        """Set the fitted attributes from an optimiser result (see ``_mle.maximise``): parameters,
        standard errors from the observed information ``total_hessian`` (the Hessian of the total
        penalised negative log-likelihood in natural parameters at the optimum), and the
        identification verdict."""
        from clv_models.models._mle import check_identified, standard_errors

        params = np.exp(result.log_params)
        errors = standard_errors(total_hessian)
        result = check_identified(result, self.PARAMETER_NAMES, errors)
        self.params_ = dict(zip(self.PARAMETER_NAMES, map(float, params), strict=True))
        self.standard_errors_ = dict(zip(self.PARAMETER_NAMES, map(float, errors), strict=True))
        self.log_likelihood_ = float(log_likelihood)
        self.converged_ = result.converged
        self.diagnostic_ = result.diagnostic
        self.unit_ = unit
        self.n_customers_ = int(round(n_customers))

    def to_dict(self) -> dict[str, Any]:
        """Parameters and metadata only: JSON-serialisable."""
        check_is_fitted(self, "params_")
        data = {
            "model": type(self).__name__,
            "penalizer": self.penalizer,  # type: ignore[attr-defined]
            "unit": self.unit_,  # type: ignore[attr-defined]
            "params": dict(self.params_),  # type: ignore[attr-defined]
            "standard_errors": dict(self.standard_errors_),  # type: ignore[attr-defined]
            "log_likelihood": self.log_likelihood_,  # type: ignore[attr-defined]
            "converged": self.converged_,  # type: ignore[attr-defined]
            "diagnostic": self.diagnostic_,  # type: ignore[attr-defined]
        }
        data.update({name: getattr(self, f"{name}_") for name in self.EXTRA_ATTRIBUTES})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        if data.get("model") != cls.__name__:
            raise ClvInputError(f"not a {cls.__name__} description: model={data.get('model')!r}")
        missing = [name for name in cls.PARAMETER_NAMES if name not in data.get("params", {})]
        if missing or "unit" not in data:
            raise ClvInputError(f"{cls.__name__} description lacks {', '.join(missing) or 'unit'}")
        model = cls(penalizer=data.get("penalizer", 0.0), unit=data["unit"])  # type: ignore[call-arg]
        model.params_ = {name: float(data["params"][name]) for name in cls.PARAMETER_NAMES}
        model.standard_errors_ = dict(data.get("standard_errors", {}))
        model.log_likelihood_ = data.get("log_likelihood")
        model.converged_ = data.get("converged", True)
        model.diagnostic_ = data.get("diagnostic", "")
        model.unit_ = data["unit"]
        for name in cls.EXTRA_ATTRIBUTES:
            setattr(model, f"{name}_", data.get(name))
        return model
