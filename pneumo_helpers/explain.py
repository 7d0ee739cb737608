"""Why did the model say PNEUMONIA: LIME superpixel weights and Grad-CAM heatmaps.

Two complementary views of one prediction:

* **LIME** (:class:`LimeExplainer`) treats the model as a black box: it hides random sets of
  superpixels, watches P(PNEUMONIA) move, and fits a weighted linear model whose coefficients
  are each superpixel's contribution. Superpixels come from SLIC on the grayscale image, not
  LIME's default quickshift: on an X-ray quickshift yields ~10 large blobs that straddle lung,
  heart and background (and takes ~0.14 s at 128 px), whereas SLIC (``compactness=0.1`` on
  intensities in [0, 1]) gives ~45 regular superpixels whose edges follow the lung borders
  and ribs in ~0.01 s, so a weight can be read as "this part of this lung".
* **Grad-CAM** (:class:`GradCam`, :func:`grad_cam`) reads the network from inside: the last
  convolution's feature maps weighted by the gradient of the class score. It costs one
  forward and backward pass, so it suits whole test sets where LIME suits a few cases.

Weights and heatmaps are returned as arrays; :mod:`pneumo_helpers.plots` draws them.
Images are ``float (H, W)`` or ``(H, W, 1)`` in [0, 1] (uint8 is scaled by 1/255), the model
input of :mod:`pneumo_helpers.models`; labels: NORMAL = 0, PNEUMONIA = 1.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from lime import lime_image
from skimage.segmentation import slic

from .labels import CLASSES
from .evaluate import pneumonia_column
from .models import ensemble_members, last_conv_layer_name, output_layer

__all__ = ["LIME_SETTINGS", "Explanation", "LimeExplainer", "segment_xray", "GradCam",
           "grad_cam", "gradcam_layer", "overlay", "lime_overlay", "CASES", "pick_cases"]

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
    called = np.asarray(y_prob) >= threshold
    masks = dict(zip(CASES, ((y == 1) & called, (y == 0) & ~called, (y == 0) & called,
                             (y == 1) & ~called)))
    return {case: int(np.flatnonzero(mask)[0]) for case, mask in masks.items() if mask.any()}

# "default" keeps one explanation at 112 px to ~0.6 s on two CPU cores (32 images in ~18 s,
# benchmarks/bench_explain.py); "thorough" (3x the perturbations, 2x finer superpixels, ~1.8 s)
# is for the few figures that go in a report.
LIME_SETTINGS = {
    "default": dict(num_samples=1000, n_segments=50),
    "thorough": dict(num_samples=3000, n_segments=100),
}


# --------------------------------------------------------------------------- inputs

def _model_input(model) -> tuple[int | None, int | None, int]:
    """(height, width, channels) of the model input; height/width None when not fixed."""
    shape = model.inputs[0].shape
    if len(shape) != 4:
        raise ValueError(f"model {model.name!r} takes inputs of shape {tuple(shape)}; "
                         "expected images (batch, height, width, channels)")
    return shape[1], shape[2], shape[3]


def _as_gray_images(images, model, *, single: bool) -> np.ndarray:
    """Images as float32 (N, H, W) in [0, 1], checked against the model's input size."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x / 255.0
    x = x.astype(np.float32)
    height, width, _ = _model_input(model)
    core = 2 if single else 3
    if x.ndim == core + 1 and x.shape[-1] in (1, 3):
        x = x.mean(axis=-1)  # (.., 1) squeezes; RGB of an X-ray is gray repeated
    if x.ndim != core:
        what = "one image (H, W) or (H, W, 1)" if single else "images (N, H, W) or (N, H, W, 1)"
        raise ValueError(f"expected {what}; got an array of shape {np.shape(images)}")
    if single:
        x = x[None]
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("image values must be in [0, 1] (or uint8 0-255); divide by 255 or "
                         "read the file with pneumo_helpers.images.read_gray")
    if (height, width) != (None, None) and x.shape[1:] != (height, width):
        raise ValueError(f"images are {x.shape[1]}x{x.shape[2]} pixels but model "
                         f"{model.name!r} expects {height}x{width}; resize them, e.g. "
                         f"read_gray(path, size={height})")
    return x


def _forward(model, batch_size: int):
    """Batched numpy forward pass (N, H, W, C) -> P(PNEUMONIA) (N,), traced once."""
    height, width, channels = _model_input(model)
    spec = tf.TensorSpec((None, height, width, channels), tf.float32)
    # One trace for every batch size; calling the model directly skips predict()'s per-call
    # dataset set-up, which LIME would pay once per batch.
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def forward(x: np.ndarray) -> np.ndarray:
        out = [call(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
        return pneumonia_column(np.concatenate(out))
    return forward


# --------------------------------------------------------------------------- LIME

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
        image: float32 (H, W) in [0, 1], the explained image.
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
        self._channels = _model_input(model)[2]
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
        """Explain one image (H, W) or (H, W, 1), float in [0, 1] (or uint8)."""
        gray = _as_gray_images(image, self.model, single=True)[0]
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
        return Explanation(image=gray, segments=segments, weights=weights,
                           heatmap=weights[segments], probability=probability,
                           label=CLASSES[int(probability >= self.threshold)],
                           score=float(result.score), intercept=float(result.intercept[1]))

    def explain_batch(self, images) -> list[Explanation]:
        """Explain each of ``images`` (N, H, W) or (N, H, W, 1); a list of N explanations."""
        return [self.explain(image) for image in _as_gray_images(images, self.model,
                                                                 single=False)]


# --------------------------------------------------------------------------- Grad-CAM

def gradcam_layer(model, layer_name: str | None = None):
    """The layer Grad-CAM reads: ``layer_name``; else the feature maps the head's global
    pooling reads (the last block's rectified output, as Grad-CAM intends: a raw convolution
    before its normalisation can flip sign, and the map then goes blank); else ``"last_conv"``
    or the last top-level Conv2D/SeparableConv2D. Raises ValueError naming what to pass."""
    names = [layer.name for layer in model.layers]
    if layer_name is not None:
        if layer_name not in names:
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; "
                             f"convolution layers: {_conv_names(model)}")
        return model.get_layer(layer_name)
    pooled = _pooled_features(model)
    return pooled if pooled is not None else model.get_layer(last_conv_layer_name(model))


def _pooled_features(model):
    """The top-level layer whose 4-D output the head's global pooling (the last one: a
    backbone's squeeze-and-excite blocks pool too) reads, or None."""
    kinds = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    for layer in reversed(model.layers):
        if isinstance(layer, kinds):
            source = layer.input._keras_history[0]
            if source in model.layers and len(source.output.shape) == 4:
                return source
    return None


def _conv_names(model) -> list[str]:
    kinds = (keras.layers.Conv2D, keras.layers.SeparableConv2D)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def _is_sigmoid(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "") == "sigmoid"


class GradCam:
    """Grad-CAM heatmaps of a Keras P(PNEUMONIA) model, traced once for fast repeated use.

    The class score is the *logit* of the output when the model ends in a sigmoid (a Dense
    or Activation layer): the gradient of a saturated sigmoid is exactly 0 in float32 for a
    confident prediction, which would give an empty map. Otherwise the output probability
    is used.

    A model that averages several members (:func:`pneumo_helpers.models.average_models`) gets
    the mean of its members' maps, each for the class the *average* predicts, renormalised to
    a peak of 1: where the members agree the map stays bright.

    Args:
        model: Keras functional model ``(B, H, W, C)`` -> P(PNEUMONIA) ``(B, 1)``.
        layer_name: layer whose feature maps are weighted (see :func:`gradcam_layer`; in
            each member for an average of models).
        target: ``"predicted"`` (each image's predicted class at ``threshold``),
            ``"pneumonia"`` or ``"normal"``: the class whose evidence is shown.
        threshold: probability at which the predicted class becomes PNEUMONIA.
        batch_size: images per pass.
    """

    TARGETS = ("predicted", "pneumonia", "normal")

    def __init__(self, model, *, layer_name: str | None = None, target: str = "predicted",
                 threshold: float = 0.5, batch_size: int = 32):
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        self.model = model
        self.target = target
        self.batch_size = int(batch_size)
        self._threshold = float(threshold)
        self._members = [GradCam(member, layer_name=layer_name, threshold=threshold,
                                 batch_size=batch_size) for member in ensemble_members(model)]
        if self._members:
            self.layer = self._members[0].layer
            return
        self.layer = gradcam_layer(model, layer_name)
        head = output_layer(model)
        if isinstance(head, keras.layers.Activation) and _is_sigmoid(head):
            logit_source, self._dense = head.input, None
        elif isinstance(head, keras.layers.Dense) and _is_sigmoid(head) and head.units == 1:
            logit_source, self._dense = head.input, head
        else:
            logit_source, self._dense = None, None
        outputs = [self.layer.output, model.output]
        if logit_source is not None:
            outputs.append(logit_source)
        self._grad_model = keras.Model(model.inputs, outputs)
        height, width, channels = _model_input(model)
        # The score of a logit at the threshold: predicted PNEUMONIA <=> logit >= this.
        self._logit_threshold = float(np.log(threshold) - np.log1p(-threshold)) \
            if 0 < threshold < 1 else (-np.inf if threshold <= 0 else np.inf)
        self._maps = tf.function(self._compute, input_signature=[
            tf.TensorSpec((None, height, width, channels), tf.float32),
            tf.TensorSpec((None,), tf.float32)])

    def _compute(self, x, forced):
        """Maps (B, H, W) of images x for the class ``forced`` gives per image: +1
        PNEUMONIA, -1 NORMAL, 0 the class this model predicts at the threshold."""
        with tf.GradientTape() as tape:
            outputs = self._grad_model(x, training=False)
            features, probability = outputs[0], outputs[1]
            if len(outputs) == 3:
                score = outputs[2]
                if self._dense is not None:  # the Dense pre-activation, i.e. the logit
                    score = tf.matmul(score, self._dense.kernel) + self._dense.bias
                score = tf.reshape(score, (-1,))
                predicted = score >= self._logit_threshold
            else:
                score = tf.reshape(probability, (tf.shape(x)[0], -1))[:, -1]
                predicted = score >= self._threshold
            sign = tf.where(forced != 0, forced, tf.where(predicted, 1.0, -1.0))
            # Images are independent in inference mode, so one gradient of the sum gives
            # every image's own gradient.
            total = tf.reduce_sum(sign * tf.cast(score, tf.float32))
        features = tf.cast(features, tf.float32)
        grads = tape.gradient(total, features)
        channel_weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak)

    def _batch(self, x: np.ndarray) -> np.ndarray:
        if self.target != "predicted":
            forced = np.full(len(x), 1.0 if self.target == "pneumonia" else -1.0, np.float32)
        elif self._members:  # the class of the average, not of each member
            p = pneumonia_column(np.asarray(self.model.predict_on_batch(x)))
            forced = np.where(p >= self._threshold, 1.0, -1.0).astype(np.float32)
        else:
            forced = np.zeros(len(x), np.float32)
        if not self._members:
            return self._maps(x, forced).numpy()
        mean = np.mean([m._maps(x, forced).numpy() for m in self._members], axis=0)
        peak = mean.max(axis=(1, 2), keepdims=True)
        return np.divide(mean, peak, out=np.zeros_like(mean), where=peak > 0)

    def __call__(self, images) -> np.ndarray:
        """Heatmaps float32 (N, H, W) in [0, 1] (1 = strongest evidence, upsampled to the
        input size) of gray images (N, H, W) or (N, H, W, 1), or one image (H, W) or
        (H, W, 1); float in [0, 1] or uint8. Gray is repeated for a 3-channel model."""
        x = np.asarray(images)
        height, width, channels = _model_input(self.model)
        single = x.ndim == 2 or (x.ndim == 3 and x.shape[-1] in (1, 3)
                                 and x.shape[:2] == (height, width))
        gray = _as_gray_images(x, self.model, single=single)
        x = np.repeat(gray[..., None], channels, axis=-1)
        maps = [self._batch(x[i:i + self.batch_size])
                for i in range(0, len(x), self.batch_size)]
        return np.concatenate(maps).astype(np.float32)


def grad_cam(model, images, *, layer_name: str | None = None, target: str = "predicted",
             threshold: float = 0.5, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heatmaps float32 (N, H, W) in [0, 1] of ``images`` (see :class:`GradCam`).

    Builds and traces a :class:`GradCam` on each call (~1 s); for repeated calls on the
    same model build one ``GradCam`` and call it.
    """
    return GradCam(model, layer_name=layer_name, target=target, threshold=threshold,
                   batch_size=batch_size)(images)


# --------------------------------------------------------------------------- overlays

def _gray_rgb(image) -> np.ndarray:
    gray = np.asarray(image, dtype=float)
    if gray.ndim == 3:
        gray = gray.mean(axis=-1)
    if gray.max() > 1:
        gray = gray / 255.0
    return np.repeat(gray[..., None], 3, axis=-1)


def overlay(image, heatmap, alpha: float = 0.4, *, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap over a grayscale image: float (H, W, 3) RGB in [0, 1].

    ``image``: (H, W) or (H, W, 1) in [0, 1] (or uint8); ``heatmap``: (H, W) in [0, 1];
    ``alpha``: heatmap opacity in [0, 1].
    """
    import matplotlib

    rgb = _gray_rgb(image)
    heat = np.asarray(heatmap, dtype=float)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} differs from image shape {rgb.shape[:2]}")
    colored = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    return np.clip((1 - alpha) * rgb + alpha * colored, 0, 1)


def lime_overlay(explanation: Explanation, *, k: int = 5, alpha: float = 0.45,
                 positive_color=(0.1, 0.7, 0.2), negative_color=(0.85, 0.1, 0.1),
                 border_alpha: float = 0.3) -> np.ndarray:
    """The image with its ``k`` strongest superpixels towards PNEUMONIA tinted green and
    towards NORMAL tinted red, every superpixel border in faint yellow (``border_alpha``
    opacity, so the borders do not hide a small image): float (H, W, 3) RGB in [0, 1]."""
    from skimage.segmentation import find_boundaries

    rgb = _gray_rgb(explanation.image)
    border = find_boundaries(explanation.segments, mode="inner")
    for mask, color, opacity in (
            (np.isin(explanation.segments, explanation.top_segments(k)), positive_color, alpha),
            (np.isin(explanation.segments, explanation.top_segments(k, sign=-1)),
             negative_color, alpha),
            (border, (1.0, 1.0, 0.0), border_alpha)):
        rgb[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(color)
    return rgb
