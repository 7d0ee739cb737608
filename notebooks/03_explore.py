# %% [markdown]
# # 03 · Explore: class balance, what the images look like, and the input pipeline
#
# We look at the clean data from 02 before modelling: how unbalanced the classes are and what each rebalancing strategy would feed the model, what NORMAL, bacterial and viral pneumonia look like, how intensities and sizes differ between classes, and what a training batch looks like after augmentation.

# %% tags=["parameters"]
# papermill injects these (one per line, so it can read them); see runner.start_notebook
DATA_DIR = None
RUN_DIR = None
PROFILE = None

# %%
from pneumo_helpers.runner import start_notebook

cfg = start_notebook(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)

import pandas as pd
from IPython.display import display

from pneumo_helpers import augment, balance, dataset, generators, plots
from pneumo_helpers.images import read_gray
from pneumo_helpers.labels import CLASSES

# %%
# NBVAL_CHECK_OUTPUT
clean = pd.read_csv(cfg.layout.clean_manifest)
train = dataset.split_rows(clean, 'train')
display(dataset.count_table(clean))

# %% [markdown]
# ## Class balance, before and after each rebalancing strategy
# The four strategies `04_model` compares, applied to the training split: what one epoch sees.
# `class_weight` keeps every image and scales the loss instead, so its counts are *weighted*.

# %%
# NBVAL_CHECK_OUTPUT
table = balance.balance_table(train['label'], seed=cfg.seed)
display(table.drop(columns='note'))

# %%
plots.class_counts(table, title='Training images per epoch, by strategy', path=cfg.layout.figure('03_balance'));

# %% [markdown]
# Undersampling balances the classes by throwing away about two thirds of the pneumonia images
# (the table above); oversampling
# and class weights keep them all. We compare the strategies on validation ROC AUC in 04 rather than
# guess.

# %% [markdown]
# ## NORMAL, bacterial and viral pneumonia

# %%
picks = pd.concat([group.sample(min(len(group), 6), random_state=cfg.seed)
                   for _, group in train.groupby('subtype')])
plots.image_grid([read_gray(p, size=128) for p in picks['path']],
                 [f"{s}\n{pid}" for s, pid in zip(picks['subtype'], picks['patient'])],
                 title='Random training images per subtype',
                 path=cfg.layout.figure('03_examples'));

# %% [markdown]
# Normal lungs look dark and clear; bacterial pneumonia tends to show a dense, localised
# consolidation, viral pneumonia a more diffuse, interstitial haze. The differences are subtle to an
# untrained eye, and exposure, patient position and the annotations burned into some images (markers,
# letters) vary much more than the pathology — a model can latch onto those instead.

# %% [markdown]
# ## Pixel intensities and the mean image

# %%
# NBVAL_CHECK_OUTPUT
pixels = generators.load_images(train, image_size=cfg.image_size, cache_dir=cfg.layout.cache)
print(f'{len(pixels):,} training films, each {pixels.shape[1]} × {pixels.shape[2]} px, '
      f'grey levels 0-255')

# %%
plots.intensity_histograms(pixels, train['label'], path=cfg.layout.figure('03_intensity'));

# %% [markdown]
# The histograms pool every pixel of a film: by that overall brightness the classes overlap
# heavily, and pneumonia films vary more in exposure, so overall brightness is not a usable signal
# (and exposure differences between devices are a nuisance: the models standardise each film's
# contrast, and training alters brightness and contrast). What differs is *where* the brightness
# sits, which the mean images show next.

# %%
plots.mean_images(pixels, train['label'], path=cfg.layout.figure('03_mean_images'));

# %% [markdown]
# The difference image shows where the classes differ on average: inside the lung fields
# pneumonia films are brighter (opacities), as expected — but the image borders and the neck differ too, which reflects
# how the two groups were framed and exposed, not disease. A model can use such framing as a
# shortcut; the explanations in 05 check whether it does.

# %% [markdown]
# ## Image sizes

# %%
sizes = dataset.size_summary(clean)
display(sizes)
if sizes['distinct sizes'].max() > 1:  # a plot of one point says nothing
    plots.size_stats(clean, path=cfg.layout.figure('03_sizes'));

# %% [markdown]
# Originals of the published dataset vary in size and aspect ratio (the bundled sample and the
# shared copy used here are already square: one size, no plot). Every image is squashed to a square at the model's input size once, when the pipeline
# fills its cache; chest anatomy survives a mild change of aspect ratio.

# %% [markdown]
# ## A training batch after augmentation
# Rotations, shifts and zooms (fused into one affine transform per image) plus brightness and
# contrast changes mimic different patient positions, exposures and devices; the run's recipe
# sets how far. The sample run alters films mildly; full runs and the shipped model also zoom
# out and in by up to 45 %, blank edge strips and corners, and change the exposure curve and
# sharpness, so the model cannot rely on the field of view or one X-ray system's look. They see
# each film twice, altered differently, and training penalises different answers for the two
# copies, after the network has first learned, without labels, to tell that two such copies are
# one film. Horizontal flips stay off: a mirrored chest (heart
# on the right) is not a realistic X-ray.

# %%
batches = generators.make_dataset(train, image_size=cfg.image_size, batch_size=18, training=True,
                                  augment=augment.AUGMENTATIONS[cfg.augment], seed=cfg.seed,
                                  cache_dir=cfg.layout.cache)
x, y = next(iter(batches))
print(f'One batch of {len(y)} films, pixel values scaled to {float(x.numpy().min()):.2f}-'
      f'{float(x.numpy().max()):.2f}')
plots.image_grid(list(x.numpy()), [CLASSES[int(v)] for v in y.numpy()],
                 title='One training batch, altered as in training',
                 path=cfg.layout.figure('03_augmented'));

# %% [markdown]
# ## What follows for modelling
# - Classes are unbalanced about 1 : 3 in every split: compare rebalancing strategies, report
#   sensitivity and specificity, and pick the decision threshold on validation.
# - Overall brightness barely separates the classes but varies from film to film: standardise
#   contrast per image and augment exposure so the model learns the shape and place of opacities.
# - Images are grayscale: one input channel is enough and three times cheaper.
