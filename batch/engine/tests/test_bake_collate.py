"""Collation of trajectories from several targets (bread-api §6.5)."""

import pytest

from bakehouse_engine.bake.collate import TargetData, collate, target_counts
from bakehouse_engine.errors import JobFailure


def target(name: str, weight: float, size: int) -> TargetData:
    return TargetData(name, weight, [{"target": name, "index": index} for index in range(size)])


def test_counts_follow_the_normalised_weights_rounded_half_up():
    datasets = [target("main", 0.8, 100), target("reg1", 0.1, 100), target("reg2", 0.1, 100)]
    assert target_counts(datasets, 50) == [40, 5, 5]
    assert target_counts([target("a", 1, 5), target("b", 1, 5)], 5) == [3, 3]  # 2.5 rounds up


def test_each_target_contributes_its_share():
    datasets = [target("main", 0.8, 100), target("reg", 0.2, 100)]
    chosen = collate(datasets, 30, seed=1)
    assert [line["target"] for line in chosen].count("main") == 24
    assert [line["target"] for line in chosen].count("reg") == 6


def test_draws_without_replacement_while_enough_remain():
    chosen = collate([target("a", 1, 10)], 10, seed=2)
    assert sorted(line["index"] for line in chosen) == list(range(10))


def test_draws_with_replacement_once_the_target_is_exhausted():
    chosen = collate([target("a", 1, 4)], 10, seed=2)
    indices = [line["index"] for line in chosen]
    assert len(indices) == 10
    assert set(indices) == {0, 1, 2, 3}  # every line once, then repeats


def test_the_seed_decides_the_sample_and_the_order():
    datasets = [target("a", 1, 50), target("b", 3, 50)]
    assert collate(datasets, 20, seed=5) == collate(datasets, 20, seed=5)
    assert collate(datasets, 20, seed=5) != collate(datasets, 20, seed=6)
    targets = [line["target"] for line in collate(datasets, 20, seed=5)]
    assert targets != sorted(targets)  # shuffled together, not target by target


def test_zero_weights_and_empty_targets_fail_with_a_reason():
    with pytest.raises(JobFailure, match="weight"):
        collate([target("a", 0, 3)], 3, seed=0)
    with pytest.raises(JobFailure, match="no rollout trajectories"):
        collate([target("a", 1, 0)], 3, seed=0)
    assert collate([target("a", 1, 3), target("b", 0, 0)], 3, seed=0)  # a zero-weight target may be empty
