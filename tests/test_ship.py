"""The shipped model's card sections (pneumo_helpers.ship)."""

import pandas as pd

from pneumo_helpers import ship


def test_the_recipe_table_gives_mean_and_spread_and_leaves_unmeasured_cells_empty(tmp_path):
    rows = [dict(recipe="framing", seed=s, val_auc=a, val_spec=0.98, crop15_spec=c)
            for s, a, c in ((42, 0.994, 0.94), (7, 0.996, 0.95), (1, 0.995, 0.96))]
    rows += [dict(recipe="framing-acq-consistency", seed=s, val_auc=0.995, val_spec=0.98,
                  crop15_spec=0.95, clahe_spec=0.9 + s / 1000) for s in (42, 7, 1)]
    summary = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(summary, index=False)
    text = ship._sweep_section(summary)
    assert "seeds 1, 7, 42" in text
    assert "| recipe | ROC AUC | unshifted | 15 % crop | CLAHE |" in text
    framing = next(line for line in text.splitlines() if line.startswith("| framing |"))
    assert "0.995 ± 0.001" in framing and "0.950 ± 0.010" in framing
    assert framing.endswith("|  |")  # no CLAHE figure for this recipe: an empty cell
    assert "0.917 ± 0.022" in text  # CLAHE of the other recipe
