"""Tests for pneumo_helpers.findings: 05's sentences come from the numbers they are given."""

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers import attention, evaluate
from pneumo_helpers.findings import interpretation
from pneumo_helpers.report import format_ci


def scores(n, separation, seed):
    """Labels (n,) and P(PNEUMONIA) (n,) of a model that separates the classes by
    ``separation``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * (2 * y - 1))))
    return y, p


def cell(table, metric):
    row = table.set_index("metric").loc[metric]
    return format_ci(row["value"], row["ci_low"], row["ci_high"])


@pytest.fixture(scope="module")
def inputs():
    """Everything 05 hands to interpretation, from synthetic scores."""
    tables, calls = {}, {}
    for split, n, separation, seed in (("val", 120, 2.0, 0), ("test", 150, 2.0, 1),
                                       ("external", 90, 0.6, 2)):
        y, p = scores(n, separation, seed)
        tables[split] = evaluate.evaluate(y, p, threshold=0.5, n_boot=50)
        calls[split] = (y, (p >= 0.5).astype(int))
    cm = evaluate.confusion(*calls["test"])
    stress = pd.DataFrame({"shift": ["none", "dark", "crop 15% per side"],
                           "specificity": [0.90, 0.70, 0.85]})
    y, pred = calls["test"]
    heat = attention.heat_table(np.linspace(0.3, 0.9, len(y)), y, pred)
    return dict(tables=tables, cm=cm, stress=stress, heat=heat,
                uniform=attention.uniform_share(64, 64), threshold=0.5)


def test_every_figure_is_the_one_it_was_given(inputs):
    lines = interpretation(**inputs)
    text = "\n".join(lines)
    test = inputs["tables"]["test"]
    for metric in ("roc_auc", "recall", "specificity", "brier"):
        assert cell(test, metric) in text, metric
    assert cell(inputs["tables"]["val"], "roc_auc") in text
    assert f"({int(test['n'].max())} films" in text and "0.500" in text
    cm = inputs["cm"]
    false_alarms = int(cm.loc["NORMAL", "PNEUMONIA"])
    missed = int(cm.loc["PNEUMONIA", "NORMAL"])
    assert f"flagged {false_alarms} normal" in text and f"missed {missed} pneumonia" in text
    assert "0.700–0.900 (lowest: dark)" in text


def test_the_attention_sentence_is_attentions_own(inputs):
    lines = interpretation(**inputs)
    assert attention.conclusion(inputs["heat"], uniform=inputs["uniform"]) in lines


def test_external_films_add_their_gap_and_only_when_given(inputs):
    with_external = interpretation(**inputs)
    without = interpretation(**{**inputs, "tables": {k: v for k, v in inputs["tables"].items()
                                                     if k != "external"}})
    assert len(with_external) > len(without)
    external = inputs["tables"]["external"]
    assert cell(external, "roc_auc").split(" ")[0] in "\n".join(with_external)
    assert all("external" not in line for line in without)


def test_a_difference_is_called_one_only_beyond_both_intervals(inputs):
    def table(value, low, high):
        frame = inputs["tables"]["val"].copy()
        frame.loc[frame["metric"] == "roc_auc", ["value", "ci_low", "ci_high"]] = \
            (value, low, high)
        return frame

    def val_line(val, test):
        tables = {"val": table(*val), "test": table(*test)}
        lines = interpretation(**{**inputs, "tables": tables})
        return next(line for line in lines if line.startswith("Validation ROC AUC"))

    overlapping = val_line((0.95, 0.92, 0.97), (0.93, 0.90, 0.96))
    apart = val_line((0.95, 0.93, 0.97), (0.85, 0.80, 0.90))
    assert "-0.020" in overlapping and "-0.100" in apart
    assert "not a difference" in overlapping and "not a difference" not in apart


def test_a_sample_run_says_so(inputs):
    assert not any("bundled sample" in line for line in interpretation(**inputs))
    assert "bundled sample" in interpretation(**inputs, sample=True)[-1]
