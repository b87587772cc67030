"""The pyfunc wrapper class (imported only when a scorer model is saved or loaded)."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class CustomerScorerModel(mlflow.pyfunc.PythonModel):
    """``predict(features, params={"codes": False, "language": …})`` → the scores table.

    ``features``: the table of :func:`clv_models.features.customer.customer_features` (its
    ``as_of`` column is the cutoff). Display labels in the training language, or ``language``
    ("en", "zh"); the English codes with ``codes=True``."""

    # model_input is hinted as a DataFrame: MLflow then keeps the logged signature and does not
    # warn (it warns on every load when predict has no hint at all).
    def load_context(self, context):  # noqa: ANN001, ANN201
        import joblib

        self.scorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ANN001, ANN201
        params = params or {}
        labels = self.scorer.settings.labels
        language = params.get("language") or labels.language
        if language != labels.language:
            labels = labels.model_copy(update={"language": language, "overrides": {}})
        return self.scorer.score(model_input, codes=bool(params.get("codes", False)), labels=labels)
