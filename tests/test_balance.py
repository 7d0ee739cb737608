"""Tests for pneumo_helpers.balance: exact counts, determinism, weights, errors."""

import numpy as np
import pytest

from pneumo_helpers.balance import STRATEGIES, balance_table, rebalance
from pneumo_helpers.labels import encode_labels

# 10 NORMAL and 25 PNEUMONIA, interleaved so row positions matter.
LABELS = np.array(["NORMAL"] * 10 + ["PNEUMONIA"] * 25)[np.random.default_rng(0).permutation(35)]
NORMAL_ROWS = np.flatnonzero(LABELS == "NORMAL")
PNEUMONIA_ROWS = np.flatnonzero(LABELS == "PNEUMONIA")


def class_counts(indices):
    y = encode_labels(LABELS)[indices]
    return int((y == 0).sum()), int((y == 1).sum())


def test_none_keeps_every_row_once():
    result = rebalance(LABELS, "none")
    assert result.indices.tolist() == list(range(35))
    assert result.class_weight is None


def test_undersample_cuts_majority_to_minority_size():
    result = rebalance(LABELS, "undersample", seed=1)
    assert class_counts(result.indices) == (10, 10)
    assert len(set(result.indices)) == 20  # no repeats
    assert set(NORMAL_ROWS) <= set(result.indices)  # every minority row kept
    assert set(result.indices) - set(NORMAL_ROWS) <= set(PNEUMONIA_ROWS)
    assert result.class_weight is None


def test_oversample_repeats_minority_evenly_up_to_majority():
    result = rebalance(LABELS, "oversample", seed=1)
    assert class_counts(result.indices) == (25, 25)
    repeats = np.bincount(result.indices, minlength=35)
    assert sorted(set(repeats[NORMAL_ROWS])) == [2, 3]  # 25 = 2 * 10 + 5 -> 5 rows thrice
    assert (repeats[NORMAL_ROWS] == 3).sum() == 5
    assert (repeats[PNEUMONIA_ROWS] == 1).all()


def test_class_weight_is_balanced_formula():
    result = rebalance(LABELS, "class_weight")
    assert result.indices.tolist() == list(range(35))
    assert result.class_weight == pytest.approx({0: 35 / (2 * 10), 1: 35 / (2 * 25)})
    assert all(isinstance(k, int) for k in result.class_weight)
    assert result.counts(LABELS) == pytest.approx({"NORMAL": 17.5, "PNEUMONIA": 17.5})


@pytest.mark.parametrize("strategy", ["undersample", "oversample"])
def test_seeded_choice_is_deterministic(strategy):
    first = rebalance(LABELS, strategy, seed=7).indices
    assert np.array_equal(first, rebalance(LABELS, strategy, seed=7).indices)
    others = [rebalance(LABELS, strategy, seed=s).indices for s in range(8, 12)]
    assert any(not np.array_equal(first, other) for other in others)


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        rebalance(LABELS, "smote")
    for name in STRATEGIES:
        assert name in str(info.value)


def test_single_class_and_empty_labels_raise():
    with pytest.raises(ValueError, match="only NORMAL"):
        rebalance(["NORMAL"] * 4, "oversample")
    assert rebalance(["NORMAL"] * 4, "none").indices.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="empty"):
        rebalance([], "none")


def test_balance_table_effective_counts():
    table = balance_table(LABELS)
    assert list(table.index) == list(STRATEGIES)
    assert table.loc["none", ["NORMAL", "PNEUMONIA"]].tolist() == [10, 25]
    assert table.loc["undersample", ["NORMAL", "PNEUMONIA", "rows per epoch"]].tolist() == [10, 10,
                                                                                          20]
    assert table.loc["oversample", ["NORMAL", "PNEUMONIA", "rows per epoch"]].tolist() == [25, 25,
                                                                                         50]
    # class_weight: all 35 rows, but the loss sees 17.5 images' worth of each class.
    assert table.loc["class_weight", "rows per epoch"] == 35
    assert table.loc["class_weight", ["NORMAL", "PNEUMONIA"]].tolist() == [18, 18]
    assert table.loc["class_weight", "% pneumonia"] == 50.0
    assert "weighted" in table.loc["class_weight", "note"]
    assert "-15 PNEUMONIA" in table.loc["undersample", "note"]
