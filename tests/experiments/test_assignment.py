"""A/B assignment (issue 19): a pure function of the customer id and the salt, so a customer keeps
the group across runs, batches, row orders and engines; the config refuses what would make a
customer's group ambiguous."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from clv_models.config import ActionSettings, ExperimentSettings, load_settings
from clv_models.errors import ClvInputError
from clv_models.experiments import CONTROL, TREATMENT, assign_groups, check_experiment_actions, unit_interval_hash
from clv_models.experiments.assignment import experiment_frame

IDS = np.array([f"C{i:08d}" for i in range(20_000)], dtype=object)


def _experiment(name: str = "coupon_test", actions: tuple[str, ...] = ("automated_win_back",), share: float = 0.5,
                salt: str = "2026-12") -> ExperimentSettings:  # fmt: skip
    return ExperimentSettings(name=name, actions=actions, holdout_share=share, salt=salt)


def test_the_hash_is_sha256_of_salt_and_id_pinned() -> None:
    # Pinned values: a change of the formula would silently move customers between groups.
    assert unit_interval_hash(["C1", "C2"], "2026-12") == pytest.approx([0.12276489, 0.15404498], abs=1e-8)
    digest = hashlib.sha256(b"2026-12:C1").digest()[:8]
    assert unit_interval_hash(["C1"], "2026-12")[0] == int.from_bytes(digest, "big") / 2**64


def test_groups_do_not_depend_on_batch_order_or_other_rows() -> None:
    actions = np.where(np.arange(len(IDS)) % 3 == 0, "automated_win_back", "newsletter").astype(object)
    experiment, group = assign_groups(IDS, actions, [_experiment()])
    order = np.random.default_rng(7).permutation(len(IDS))
    shuffled = assign_groups(IDS[order], actions[order], [_experiment()])
    assert shuffled[1].tolist() == group[order].tolist()
    for chunk in np.array_split(np.arange(len(IDS)), 7):  # any chunking gives the same rows
        assert assign_groups(IDS[chunk], actions[chunk], [_experiment()])[1].tolist() == group[chunk].tolist()
    covered = actions == "automated_win_back"
    assert set(experiment[covered]) == {"coupon_test"} and set(group[covered]) == {CONTROL, TREATMENT}
    assert all(v is None for v in experiment[~covered]) and all(v is None for v in group[~covered])


def test_the_group_follows_the_customer_not_the_action() -> None:
    spec = _experiment(actions=("automated_win_back", "reactivation_offer"))
    first = assign_groups(IDS, np.full(len(IDS), "automated_win_back", dtype=object), [spec])[1]
    second = assign_groups(IDS, np.full(len(IDS), "reactivation_offer", dtype=object), [spec])[1]
    assert first.tolist() == second.tolist()


@pytest.mark.parametrize("share", [0.1, 0.5, 0.8])
def test_the_holdout_share_is_met_and_a_new_salt_draws_new_groups(share: float) -> None:
    everyone = np.full(len(IDS), "a", dtype=object)
    group = assign_groups(IDS, everyone, [_experiment(actions=("a",), share=share)])[1]
    control = np.mean(group == CONTROL)
    assert abs(control - share) < 4 * np.sqrt(share * (1 - share) / len(IDS))  # within 4 binomial sd
    other = assign_groups(IDS, everyone, [_experiment(actions=("a",), share=share, salt="2027-01")])[1]
    # Independent draws agree on about share² + (1 − share)² of the customers.
    agree = np.mean(other == group)
    assert abs(agree - (share**2 + (1 - share) ** 2)) < 0.02


def test_experiment_frame_writes_text_columns_even_when_nobody_is_covered() -> None:
    import pandas as pd
    import pyarrow as pa

    codes = pd.DataFrame({"customer_id": ["C1", "C2"], "next_best_action": ["newsletter", "newsletter"]})
    frame = experiment_frame(codes, [_experiment()])
    assert frame.isna().all().all()
    schema = pa.Table.from_pandas(frame, preserve_index=False).schema
    assert all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in schema.types)


def test_config_reads_experiments_and_refuses_overlaps_and_bad_shares(tmp_path) -> None:
    config = tmp_path / "score.toml"
    config.write_text(
        '[[experiments]]\nname = "coupon_test"\nactions = ["automated_win_back"]\nholdout_share = 0.3\n'
        'salt = "2026-12"\n\n[[experiments]]\nname = "vip"\nactions = ["loyalty_rewards"]\nsalt = "v1"\n',
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert [e.name for e in settings.experiments] == ["coupon_test", "vip"]
    assert settings.experiments[1].holdout_share == 0.5
    overlap = [{"name": "a", "actions": ["x"], "salt": "s"}, {"name": "b", "actions": ["y", "x"], "salt": "t"}]
    with pytest.raises(ClvInputError, match="action 'x' is in experiments 'a' and 'b'"):
        load_settings(None, None, {"experiments": overlap})
    with pytest.raises(ClvInputError, match="two experiments are named 'a'"):
        load_settings(None, None, {"experiments": [overlap[0], {**overlap[1], "name": "a", "actions": ["z"]}]})
    with pytest.raises(ClvInputError, match="holdout_share"):
        load_settings(None, None, {"experiments": [{**overlap[0], "holdout_share": 1.0}]})
    with pytest.raises(ClvInputError, match="did you mean experiments.0.holdout_share"):
        load_settings(None, None, {"experiments": [{**overlap[0], "holdout": 0.2}]})


def test_unknown_actions_are_one_line_listing_the_valid_ones() -> None:
    with pytest.raises(ClvInputError) as caught:
        check_experiment_actions([_experiment(actions=("win_back_offer",))], ActionSettings(), "models:/m@champion")
    message = str(caught.value)
    assert "\n" not in message and "unknown action(s) win_back_offer" in message
    assert "automated_win_back" in message and "newsletter" in message
    check_experiment_actions([_experiment()], ActionSettings(), "m")  # a valid one passes
