"""What both explanations share: which films to explain, their input, and the overlays.

Two complementary views of one prediction live in their own modules:

* :mod:`.lime_explain` treats the model as a black box (hide superpixels, watch
  P(PNEUMONIA) move), for a few cases;
* :mod:`.gradcam` reads the network from inside (feature maps weighted by the gradient of the
  class score), one forward and backward pass, for whole test sets.

Both take films as :func:`pneumo_helpers.images.read_gray` gives them: uint8 ``(H, W)`` or
``(N, H, W)`` (a trailing channel of 1 is fine), scaled by :func:`~.images.to_unit`. Weights
and heatmaps are arrays; :mod:`.model_plots` draws them. Labels: NORMAL = 0, PNEUMONIA = 1.
"""

from __future__ import annotations

import numpy as np

from .images import to_unit
from .labels import call

__all__ = ["CASES", "pick_cases", "input_shape", "model_input", "film_rgb", "overlay"]

CASES = ("true positive", "true negative", "false positive", "false negative")


def pick_cases(y_true, y_prob, *, threshold: float) -> dict[str, int]:
    """One image of each kind of case to explain: the first of the split (not hand-picked).

    Args:
        y_true: ``(N,)`` labels, 0 = NORMAL, 1 = PNEUMONIA. y_prob: ``(N,)`` P(PNEUMONIA).
        threshold: a case is a positive when ``y_prob >= threshold``.

    Returns:
        ``{case: index}`` in the order of :data:`CASES`, for the kinds that occur.
    """
    y = np.asarray(y_true).astype(int)
    called = call(y_prob, threshold).astype(bool)
    masks = dict(zip(CASES, ((y == 1) & called, (y == 0) & ~called, (y == 0) & called,
                             (y == 1) & ~called)))
    return {case: int(np.flatnonzero(mask)[0]) for case, mask in masks.items() if mask.any()}


def input_shape(model) -> tuple[int | None, int | None, int]:
    """(height, width, channels) of the model input; height/width None when not fixed."""
    shape = model.inputs[0].shape
    if len(shape) != 4:
        raise ValueError(f"model {model.name!r} takes inputs of shape {tuple(shape)}; "
                         "expected images (batch, height, width, channels)")
    return shape[1], shape[2], shape[3]


def model_input(films, model, *, single: bool) -> np.ndarray:
    """uint8 films -> float32 ``(N, H, W)`` in [0, 1], checked against the model's input size.

    ``films``: one film ``(H, W)``/``(H, W, 1)`` when ``single``, else ``(N, H, W)``/
    ``(N, H, W, 1)``; a gray-as-RGB last axis of 3 is averaged.
    """
    x = np.asarray(films)
    height, width, _ = input_shape(model)
    core = 2 if single else 3
    if x.ndim == core + 1 and x.shape[-1] in (1, 3):
        x = x[..., 0] if x.shape[-1] == 1 else x.mean(axis=-1).round().astype(x.dtype)
    if x.ndim != core:
        what = "one film (H, W) or (H, W, 1)" if single else "films (N, H, W) or (N, H, W, 1)"
        raise ValueError(f"expected {what}; got an array of shape {np.shape(films)}")
    x = to_unit(x[None] if single else x)
    if (height, width) != (None, None) and x.shape[1:] != (height, width):
        raise ValueError(f"films are {x.shape[1]}x{x.shape[2]} pixels but model "
                         f"{model.name!r} expects {height}x{width}; resize them, e.g. "
                         f"read_gray(path, size={height})")
    return x


# --- Overlays -------------------------------------------------------------------------------

def film_rgb(film) -> np.ndarray:
    """A uint8 film (H, W[, 1]) as float (H, W, 3) RGB in [0, 1], for drawing over."""
    gray = np.asarray(film)
    if gray.ndim == 3:
        gray = gray[..., 0]
    return np.repeat(to_unit(gray)[..., None].astype(float), 3, axis=-1)


def overlay(image, heatmap, alpha: float = 0.4, *, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap over a grayscale image: float (H, W, 3) RGB in [0, 1].

    ``image``: uint8 (H, W) or (H, W, 1); ``heatmap``: (H, W) in [0, 1];
    ``alpha``: heatmap opacity in [0, 1].
    """
    import matplotlib

    rgb = film_rgb(image)
    heat = np.asarray(heatmap, dtype=float)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} differs from image shape {rgb.shape[:2]}")
    colored = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    return np.clip((1 - alpha) * rgb + alpha * colored, 0, 1)
