"""Where Grad-CAM heat falls: pneumo_helpers.attention."""

import numpy as np
import pytest

from pneumo_helpers import attention


def test_central_share_of_centre_border_and_uniform_maps():
    maps = np.zeros((4, 20, 20))
    maps[0, 8:12, 8:12] = 1  # all heat in the middle
    maps[1, 0:2, :] = 1  # a strip along the top edge: the neck
    maps[2] = 1  # uniform
    shares = attention.central_share(maps, border=0.15)
    assert shares[0] == 1 and shares[1] == 0
    assert shares[2] == pytest.approx(attention.uniform_share(20, 20, border=0.15))
    assert attention.uniform_share(20, 20, border=0.15) == pytest.approx(14 * 14 / 400)
    assert np.isnan(shares[3])  # no heat at all: no share


def test_negative_or_flat_input_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        attention.central_share(-np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        attention.central_share(np.ones((4, 4)))


def test_heat_table_groups_by_class_and_call():
    shares = np.array([0.9, 0.8, 0.2, 0.1, np.nan])
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    table = attention.heat_table(shares, y_true, y_pred)
    assert table.loc[("NORMAL", "right"), "films"] == 1
    assert table.loc[("NORMAL", "wrong"), "mean"] == pytest.approx(0.8)
    assert table.loc[("PNEUMONIA", "right"), "mean"] == pytest.approx(0.15)
    assert table.loc[("PNEUMONIA", "right"), "on border"] == 1.0
    assert table.loc[("all", "all"), "films"] == 4  # the NaN map is left out


def test_conclusion_names_the_group_whose_maps_sit_on_the_borders():
    shares = np.array([0.9, 0.8, 0.2, 0.1, 0.3])
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 1])
    text = attention.conclusion(attention.heat_table(shares, y_true, y_pred), uniform=0.49)
    assert "(100% of the maps of right calls on PNEUMONIA films)" in text
    central = attention.conclusion(attention.heat_table(np.full(5, 0.9), y_true, y_pred),
                                   uniform=0.49)
    assert "border strips" in central and "of the maps of" not in central
