"""Tests of pneumo_helpers.dataset: the summaries of a manifest."""

import pandas as pd
import pytest

from pneumo_helpers.dataset import count_table, manifest_hash, size_summary, split_rows


def manifest(labels, splits, sizes=None):
    """A manifest of the columns the summaries read."""
    sizes = sizes or [(100, 80)] * len(labels)
    return pd.DataFrame(dict(label=labels, split=splits,
                             sha256=[f"h{i}" for i in range(len(labels))],
                             width=[w for w, _ in sizes], height=[h for _, h in sizes]))


def test_count_table_orders_the_splits_and_gives_the_share_of_pneumonia():
    table = count_table(manifest(["NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"],
                                 ["test", "train", "train", "val"]))
    assert list(table.index) == ["train", "val", "test"]
    assert table.loc["train"].tolist() == [0, 2, 2, 100.0]
    assert table.loc["test", "% pneumonia"] == 0.0


def test_size_summary_gives_one_value_or_a_span():
    rows = manifest(["NORMAL", "NORMAL", "PNEUMONIA"], ["train"] * 3,
                    [(100, 80), (200, 100), (64, 64)])
    table = size_summary(rows)
    assert table.loc["NORMAL", "width px"] == "100–200 (median 150)"
    assert table.loc["PNEUMONIA", "width px"] == "64" and table.loc["PNEUMONIA", "aspect"] == 1.0
    assert table.loc["NORMAL", "distinct sizes"] == 2


def test_manifest_hash_changes_with_a_label_or_a_split():
    rows = manifest(["NORMAL", "PNEUMONIA"], ["train", "val"])
    assert manifest_hash(rows) == manifest_hash(rows.copy()) and len(manifest_hash(rows)) == 16
    assert manifest_hash(rows) != manifest_hash(rows.assign(label=["PNEUMONIA"] * 2))
    assert manifest_hash(rows) != manifest_hash(rows.assign(split=["train"] * 2))


def test_split_rows_keeps_one_split_numbered_from_zero():
    table = manifest(["NORMAL", "PNEUMONIA", "NORMAL"], splits=["val", "train", "val"])
    rows = split_rows(table, "val")
    assert list(rows.index) == [0, 1] and set(rows["split"]) == {"val"}
    with pytest.raises(ValueError, match="split must be one of"):
        split_rows(table, "validation")
