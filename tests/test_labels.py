"""Tests for pneumo_helpers.labels: class order, label encoding, patients and subtypes."""

import numpy as np
import pandas as pd
import pytest

from pneumo_helpers.labels import CLASSES, encode_labels, patient_id, subtype


def test_the_class_order_is_the_encoding():
    assert encode_labels(list(CLASSES)).tolist() == [0, 1]


def test_encode_labels_accepts_names_and_codes():
    assert encode_labels(["NORMAL", "PNEUMONIA", "NORMAL"]).tolist() == [0, 1, 0]
    assert encode_labels(pd.Series([1.0, 0.0])).tolist() == [1, 0]
    assert encode_labels(np.array([True, False])).tolist() == [1, 0]
    assert encode_labels([1, 0]).dtype == np.int64


@pytest.mark.parametrize("bad, named", [
    (["NORMAL", "COVID"], "COVID"),
    ([0, 2], "0/1"),
    ([0.5, 1.0], "0/1"),
    (["normal"], "normal"),          # names are case-sensitive: a typo is not a class
])
def test_encode_labels_refuses_anything_else_and_names_it(bad, named):
    with pytest.raises(ValueError, match=named):
        encode_labels(bad)


def test_encode_labels_counts_the_bad_rows():
    with pytest.raises(ValueError, match="in 2 rows"):
        encode_labels(["COVID", "NORMAL", "COVID"])


def test_encode_labels_wants_one_dimension():
    with pytest.raises(ValueError, match="one-dimensional"):
        encode_labels(np.zeros((2, 2)))


@pytest.mark.parametrize("name, patient", [
    ("person1000_bacteria_2931.jpeg", "person1000"),
    ("person1000_virus_1681.jpeg", "person1000"),
    ("person447_virus_921_1.jpeg", "person447"),
    ("IM-0115-0001.jpeg", "IM-0115"),
    ("IM-0429-0001-0002.jpeg", "IM-0429"),
    ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
    ("NORMAL2-IM-0587-0001-0001.jpeg", "NORMAL2-IM-0587"),
    ("scan_of_someone.png", "scan_of_someone"),
    ("train/PNEUMONIA/person3_virus_15.jpeg", "person3"),   # a path: its file name counts
])
def test_patient_id_every_naming_form(name, patient):
    assert patient_id(name) == patient


def test_patient_id_keeps_normal2_and_im_apart():
    # Same number, different source series: different patients.
    assert patient_id("IM-0587-0001.jpeg") != patient_id("NORMAL2-IM-0587-0001.jpeg")


@pytest.mark.parametrize("name, label, kind", [
    ("person1_bacteria_1.jpeg", "PNEUMONIA", "bacteria"),
    ("person1_virus_6_1.jpeg", "PNEUMONIA", "virus"),
    ("PERSON1_VIRUS_6.jpeg", "PNEUMONIA", "virus"),
    ("IM-0115-0001.jpeg", "NORMAL", "normal"),
    ("person1_virus_6.jpeg", "NORMAL", "normal"),   # the label decides a normal film
    ("odd.jpeg", "PNEUMONIA", "unknown"),
])
def test_subtype(name, label, kind):
    assert subtype(name, label) == kind


def test_call_is_pneumonia_from_the_threshold_up():
    from pneumo_helpers.labels import call

    p = np.array([0.1, 0.5, 0.49999, 0.9, np.nan])
    np.testing.assert_array_equal(call(p, 0.5), [0, 1, 0, 1, 0])  # at the threshold: PNEUMONIA
    assert call(0.7, 0.7) == 1 and call(0.7, 0.71) == 0
