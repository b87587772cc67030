"""Deterministic A/B assignment of customers to ``treatment`` or ``control``.

A customer's group is a function of the customer id and the experiment's salt only:
``u = first 8 bytes of SHA-256(salt + ":" + customer_id)`` read as an unsigned big-endian integer
divided by 2**64 (so ``u`` is uniform on [0, 1)); ``control`` when ``u < holdout_share``, else
``treatment``. Nothing else enters: not the batch, the chunk, the engine, the run or the order of
the rows, so the same customer stays in the same group across runs, chunk sizes and engines, and
across actions of one experiment (a customer whose action moves from one covered action to
another keeps the group). A new salt draws new groups; two experiments with one salt draw the same
``u`` for a customer, so give each experiment its own salt.

SHA-256 from :mod:`hashlib` (standard library, identical on every platform and Python version),
not Python's ``hash`` (salted per process) nor a third-party hash. Cost: about 1 µs per covered
customer (measured: 250,000 ids in 0.5 s on a loaded 2-core machine), only for customers an experiment covers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from clv_models.errors import ClvInputError

if TYPE_CHECKING:
    import pandas as pd

    from clv_models.config import ExperimentSettings

CONTROL = "control"
TREATMENT = "treatment"
#: The scores columns written when ``[[experiments]]`` is configured.
EXPERIMENT_COLUMNS = ("experiment", "experiment_group")
_TWO_TO_64 = float(2**64)


def unit_interval_hash(customer_ids: Iterable[Any], salt: str) -> np.ndarray:
    """``u`` in [0, 1) per customer id (module docstring); ids are read as text."""
    out = [
        int.from_bytes(hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()[:8], "big") / _TWO_TO_64
        for customer_id in customer_ids
    ]
    return np.asarray(out, dtype=np.float64)


def assign_groups(
    customer_ids: Sequence[Any] | np.ndarray,
    actions: Sequence[Any] | np.ndarray,
    experiments: Sequence[ExperimentSettings],
) -> tuple[np.ndarray, np.ndarray]:
    """``(experiment, experiment_group)`` per customer, object arrays with ``None`` where no
    experiment covers the customer's action. ``actions`` are action *codes* (not display labels).
    Overlapping experiments are refused by the config (:class:`clv_models.config.Settings`)."""
    ids = np.asarray(customer_ids, dtype=object)
    codes = np.asarray(actions, dtype=object)
    experiment = np.full(len(ids), None, dtype=object)
    group = np.full(len(ids), None, dtype=object)
    for spec in experiments:
        covered = np.isin(codes, list(spec.actions))
        if not covered.any():
            continue
        u = unit_interval_hash(ids[covered], spec.salt)
        experiment[covered] = spec.name
        group[covered] = np.where(u < spec.holdout_share, CONTROL, TREATMENT)
    return experiment, group


def known_actions(action_settings: Any) -> list[str]:
    """Every action code the rules of ``[actions]`` (a :class:`~clv_models.config.ActionSettings`)
    can give, in rule order, the default last."""
    codes = [rule.action for rule in action_settings.rules] + [action_settings.default]
    return list(dict.fromkeys(codes))


def check_experiment_actions(experiments: Sequence[ExperimentSettings], action_settings: Any, model: str) -> None:
    """One-line error when an experiment names an action the scorer's rules never give."""
    valid = known_actions(action_settings)
    for spec in experiments:
        unknown = [a for a in spec.actions if a not in valid]
        if unknown:
            raise ClvInputError(
                f"experiment {spec.name!r}: unknown action(s) {', '.join(unknown)}; the actions of model {model} "
                f"are {', '.join(valid)}"
            )


def experiment_frame(codes: pd.DataFrame, experiments: Sequence[ExperimentSettings]) -> pd.DataFrame:
    """The two experiment columns for a batch of scores codes (``customer_id``,
    ``next_best_action``), as text columns (pandas ``str``: every chunk writes the same Parquet
    type, even a chunk where no experiment covers anyone, whose columns are all missing)."""
    import pandas as pd

    experiment, group = assign_groups(
        codes["customer_id"].to_numpy(dtype=object), codes["next_best_action"].to_numpy(dtype=object), experiments
    )
    return pd.DataFrame(
        {
            "experiment": pd.Series(experiment, dtype="str", index=codes.index),
            "experiment_group": pd.Series(group, dtype="str", index=codes.index),
        }
    )
