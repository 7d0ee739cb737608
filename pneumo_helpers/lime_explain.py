"""LIME superpixel weights: which parts of a film move the model's P(PNEUMONIA).

:class:`LimeExplainer` treats the model as a black box: it hides random sets of superpixels,
watches P(PNEUMONIA) move, and fits a weighted linear model whose coefficients are each
superpixel's contribution. Superpixels come from SLIC on the grayscale film rather than
LIME's default quickshift, whose few large blobs straddle lung, heart and background; SLIC's
edges follow the lung borders and ribs, so a weight reads as "this part of this lung".
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from lime import lime_image
from skimage.segmentation import slic

from .evaluate import pneumonia_column
from .explain import film_rgb, input_shape, model_input
from .labels import CLASSES, call

__all__ = ["LIME_SETTINGS", "Explanation", "LimeExplainer", "segment_xray", "lime_overlay"]

# "default" keeps one explanation at 112 px to ~0.6 s on two CPU cores (32 images in ~18 s,
# benchmarks/bench_explain.py); "thorough" (3x the perturbations, 2x finer superpixels, ~1.8 s)
# is for the few figures that go in a report.
LIME_SETTINGS = {
    "default": dict(num_samples=1000, n_segments=50),
    "thorough": dict(num_samples=3000, n_segments=100),
}


def _forward(model, batch_size: int):
    """Batched numpy forward pass (N, H, W, C) -> P(PNEUMONIA) (N,), traced once."""
    height, width, channels = input_shape(model)
    spec = tf.TensorSpec((None, height, width, channels), tf.float32)
    # One trace for every batch size; calling the model directly skips predict()'s per-call
    # dataset set-up, which LIME would pay once per batch.
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def forward(x: np.ndarray) -> np.ndarray:
        out = [call(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
        return pneumonia_column(np.concatenate(out))
    return forward


def segment_xray(image, *, n_segments: int = 50, compactness: float = 0.1,
                 sigma: float = 1.0) -> np.ndarray:
    """SLIC superpixels of a grayscale X-ray: int (H, W) labels 0..K-1 (K close to n_segments).

    ``image``: float (H, W) in [0, 1] (an (H, W, 3) gray-as-RGB image, as LIME passes it, is
    reduced to one channel). ``compactness`` trades intensity edges (low) against square
    shapes (high); 0.1 suits intensities in [0, 1]. ``sigma``: Gaussian pre-smoothing in
    pixels, so film grain does not fray the borders.
    """
    gray = np.asarray(image, dtype=float)
    if gray.ndim == 3:
        gray = gray.mean(axis=-1)
    segments = slic(gray, n_segments=n_segments, compactness=compactness, sigma=sigma,
                    channel_axis=None, start_label=0)
    # LIME indexes its features by label: make the labels exactly 0..K-1.
    return np.unique(segments, return_inverse=True)[1].reshape(segments.shape)


class _ArrayLimeImageExplainer(lime_image.LimeImageExplainer):
    """``LimeImageExplainer`` whose neighbourhood images are built by array indexing.

    lime 0.2.0.1 builds every perturbed image with a Python loop over its hidden superpixels
    and always draws a tqdm bar. This override draws the same random on/off matrix from the
    same generator and makes the same images, without the loop or the bar, so results equal
    lime's own for a given ``random_state``. Images keep the dtype and channels of ``image``:
    :class:`LimeExplainer` passes a float32 (H, W, 1) X-ray, a third of the memory traffic
    of lime's float64 RGB copy, which at 128 px cost as much time as the model itself.
    """

    def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples,
                    batch_size=10, progress_bar=False):
        n_features = np.unique(segments).shape[0]
        data = self.random_state.randint(0, 2, num_samples * n_features).reshape(
            (num_samples, n_features))
        data[0, :] = 1  # the first sample is the unperturbed image
        labels = []
        for start in range(0, num_samples, batch_size):
            keep = data[start:start + batch_size].astype(bool)[:, segments]  # (B, H, W)
            labels.append(classifier_fn(np.where(keep[..., None], image, fudged_image)))
        return data, np.concatenate(labels)


@dataclasses.dataclass
class Explanation:
    """LIME's answer for one image.

    Attributes:
        image: uint8 (H, W), the explained film.
        segments: int (H, W), superpixel label 0..K-1 of each pixel.
        weights: float (K,), each superpixel's LIME weight towards PNEUMONIA (change in
            P(PNEUMONIA) when it is shown rather than hidden); negative = towards NORMAL.
        heatmap: float (H, W), each pixel's superpixel weight.
        probability: the model's P(PNEUMONIA) for the unperturbed image.
        label: ``"PNEUMONIA"`` when ``probability >= threshold`` else ``"NORMAL"``.
        score: R^2 of LIME's weighted linear fit (how well the weights describe the model
            around this image; low values mean read the weights with care).
        intercept: P(PNEUMONIA) of the linear fit with every superpixel hidden.
    """

    image: np.ndarray
    segments: np.ndarray
    weights: np.ndarray
    heatmap: np.ndarray
    probability: float
    label: str
    score: float
    intercept: float

    def top_segments(self, k: int = 5, *, sign: int = 1) -> np.ndarray:
        """Labels of the ``k`` superpixels with the largest weights of ``sign`` (+1 towards
        PNEUMONIA, -1 towards NORMAL), strongest first; fewer if fewer have that sign."""
        signed = self.weights * np.sign(sign)
        order = np.argsort(-signed, kind="stable")
        return order[signed[order] > 0][:k]


class LimeExplainer:
    """LIME explanations of a Keras P(PNEUMONIA) model on grayscale X-rays.

    Args:
        model: Keras model ``float32 (B, H, W, C)`` in [0, 1] -> P(PNEUMONIA) ``(B, 1)`` (or a
            2-class softmax), C = 1 or 3. The perturbed images stay gray (H, W, 1) and are
            repeated for a 3-channel model; :meth:`predict_fn` also takes LIME's usual RGB
            images and turns them into gray (mean of RGB) for a 1-channel model.
        settings: ``"default"`` (1,000 perturbations, ~50 superpixels) or ``"thorough"``
            (3,000, ~100); see :data:`LIME_SETTINGS`.
        num_samples, n_segments: override the chosen settings.
        compactness: SLIC compactness (see :func:`segment_xray`).
        hide_color: value a hidden superpixel takes. 0 (black, the density of air on a
            radiograph) rather than LIME's default superpixel mean: the mean keeps a uniform
            opacity's brightness, so hiding it would change nothing.
        batch_size: perturbed images per forward pass.
        threshold: probability at which ``Explanation.label`` becomes PNEUMONIA.
        random_state: seed; each image is explained with a fresh generator seeded with it, so
            an explanation does not depend on which images were explained before.
    """

    def __init__(self, model, *, settings: str = "default", num_samples: int | None = None,
                 n_segments: int | None = None, compactness: float = 0.1,
                 hide_color: float = 0.0, batch_size: int = 250, threshold: float = 0.5,
                 random_state: int = 0):
        if settings not in LIME_SETTINGS:
            raise ValueError(f"settings must be one of {sorted(LIME_SETTINGS)}, "
                             f"got {settings!r}")
        chosen = LIME_SETTINGS[settings]
        self.model = model
        self.settings = settings
        self.num_samples = int(num_samples or chosen["num_samples"])
        self.n_segments = int(n_segments or chosen["n_segments"])
        if self.num_samples < 10 or self.n_segments < 2:
            raise ValueError("num_samples must be >= 10 and n_segments >= 2, got "
                             f"{self.num_samples} and {self.n_segments}")
        self.compactness = compactness
        self.hide_color = float(hide_color)
        self.batch_size = int(batch_size)
        self.threshold = threshold
        self.random_state = random_state
        self._channels = input_shape(model)[2]
        self._forward = _forward(model, self.batch_size)

    def predict_fn(self, images: np.ndarray) -> np.ndarray:
        """LIME's classifier: float (B, H, W, 3) RGB or (B, H, W, 1) gray -> float (B, 2) =
        [P(NORMAL), P(PNEUMONIA)]; RGB becomes gray (mean of RGB) for a 1-channel model."""
        x = np.asarray(images, dtype=np.float32)
        if x.shape[-1] != self._channels:
            x = (x.mean(axis=-1, keepdims=True) if self._channels == 1
                 else np.repeat(x, self._channels, axis=-1))
        p = self._forward(x)
        return np.stack([1.0 - p, p], axis=1)

    def explain(self, image) -> Explanation:
        """Explain one uint8 film (H, W) or (H, W, 1)."""
        gray = model_input(image, self.model, single=True)[0]
        lime = _ArrayLimeImageExplainer(feature_selection="none",
                                        random_state=self.random_state)
        # (H, W, 1), not (H, W): lime would make a 2-D image RGB, tripling the work.
        result = lime.explain_instance(
            gray[..., None], self.predict_fn, labels=(1,), top_labels=None,
            hide_color=self.hide_color, num_samples=self.num_samples,
            batch_size=self.batch_size, random_seed=self.random_state,
            segmentation_fn=lambda img: segment_xray(img, n_segments=self.n_segments,
                                                     compactness=self.compactness))
        segments = result.segments
        weights = np.zeros(segments.max() + 1)
        for segment, weight in result.local_exp[1]:
            weights[segment] = weight
        probability = float(self.predict_fn(result.image[None])[0, 1])
        return Explanation(image=np.asarray(image).reshape(gray.shape), segments=segments, weights=weights,
                           heatmap=weights[segments], probability=probability,
                           label=CLASSES[int(call(probability, self.threshold))],
                           score=float(result.score), intercept=float(result.intercept[1]))

    def explain_batch(self, images) -> list[Explanation]:
        """Explain each uint8 film of ``images`` (N, H, W) or (N, H, W, 1); N explanations."""
        model_input(images, self.model, single=False)  # one error for the whole batch
        return [self.explain(image) for image in np.asarray(images)]


def lime_overlay(explanation: Explanation, *, k: int = 5, alpha: float = 0.45,
                 positive_color=(0.1, 0.7, 0.2), negative_color=(0.85, 0.1, 0.1),
                 border_alpha: float = 0.3) -> np.ndarray:
    """The image with its ``k`` strongest superpixels towards PNEUMONIA tinted green and
    towards NORMAL tinted red, every superpixel border in faint yellow (``border_alpha``
    opacity, so the borders do not hide a small image): float (H, W, 3) RGB in [0, 1]."""
    from skimage.segmentation import find_boundaries

    rgb = film_rgb(explanation.image)
    border = find_boundaries(explanation.segments, mode="inner")
    for mask, color, opacity in (
            (np.isin(explanation.segments, explanation.top_segments(k)), positive_color, alpha),
            (np.isin(explanation.segments, explanation.top_segments(k, sign=-1)),
             negative_color, alpha),
            (border, (1.0, 1.0, 0.0), border_alpha)):
        rgb[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(color)
    return rgb
