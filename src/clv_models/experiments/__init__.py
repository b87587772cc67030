"""A/B tests of the next best actions (issue 19): who is held out, and what the actions did.

* :mod:`~clv_models.experiments.assignment`: the pure, deterministic group assignment that
  ``clv score`` applies to every batch (both engines call it from
  :func:`clv_models.scoring.batch.score_batch`), so a customer's group depends only on the
  customer id and the experiment's salt.
* :mod:`~clv_models.experiments.effects`: treatment − control per experiment and action over the
  period after the scores' cutoff: differences with confidence intervals, p-values and the
  minimum detectable effect (scipy.stats).

Both sit beside ``evaluation`` in the layering of DESIGN.md §3 (they import only ``config``,
``errors``, numpy, pandas and scipy); the job that reads the files and logs the run is
:mod:`clv_models.scoring.action_effects`. Importing this package computes nothing.
"""

from clv_models.experiments.assignment import (
    CONTROL,
    EXPERIMENT_COLUMNS,
    TREATMENT,
    assign_groups,
    check_experiment_actions,
    unit_interval_hash,
)
from clv_models.experiments.effects import OUTCOMES, compare_groups, minimum_detectable_effect

__all__ = [
    "CONTROL",
    "EXPERIMENT_COLUMNS",
    "OUTCOMES",
    "TREATMENT",
    "assign_groups",
    "check_experiment_actions",
    "compare_groups",
    "minimum_detectable_effect",
    "unit_interval_hash",
]
