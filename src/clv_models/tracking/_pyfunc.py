"""The pyfunc wrapper class (imported only when a scorer model is saved or loaded)."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class CustomerScorerModel(mlflow.pyfunc.PythonModel):
    """``predict(features, params={"as_of": "YYYY-MM-DD", "codes": False})`` → the scores table
    (display labels, or the English codes with ``codes=True``)."""

    # model_input is hinted as a DataFrame: MLflow then keeps the logged signature and does not
    # warn (it warns on every load when predict has no hint at all).
    def load_context(self, context):  # noqa: ANN001, ANN201
        import joblib

        self.scorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ANN001, ANN201
        params = params or {}
        as_of = params.get("as_of") or self.scorer.trained_as_of
        return self.scorer.score(model_input, as_of=str(as_of), codes=bool(params.get("codes", False)))
