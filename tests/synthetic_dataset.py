"""Synthetic films and datasets in the Kaggle layout, for the tests."""

import numpy as np
from PIL import Image

from pneumo_helpers.labels import CLASSES


def gray(seed, size=40):
    """A random 8-bit grayscale image, ``size`` x ``size``."""
    return np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)


def smooth_film(seed: int, size: int = 48) -> np.ndarray:
    """A smooth, asymmetric uint8 picture: flips and shifts change it visibly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    blobs = np.kron(rng.uniform(-50, 50, (4, 4)), np.ones((size // 4, size // 4)))
    img = 110 + 60 * np.sin(3 * xx + rng.uniform(0, 3)) * yy + 40 * xx + blobs
    img[: size // 3, : size // 4] = 250  # a bright block in one corner
    return np.clip(img, 0, 255).astype(np.uint8)


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
