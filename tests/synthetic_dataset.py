"""Synthetic datasets in the Kaggle layout, written by the tests of obtain and scrub."""

import numpy as np
from PIL import Image

from pneumo_helpers.labels import CLASSES


def gray(seed, size=40):
    """A random 8-bit grayscale image, ``size`` x ``size``."""
    return np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)


def make_dataset(root, *, splits=("train", "test"), per_class=6):
    """A Kaggle-layout folder with `per_class` images per class, two images per patient."""
    for split in splits:
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                name = (f"person{i // 2 + (100 if split == 'test' else 0)}_bacteria_{i}.jpeg"
                        if label == "PNEUMONIA"
                        else f"IM-{i // 2 + (500 if split == 'test' else 0):04d}-000{i % 2}.jpeg")
                Image.fromarray(gray(hash((split, label, i)) % 2**32)).save(folder / name)
    return root
