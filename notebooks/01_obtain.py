# %% [markdown]
# # 01 · Obtain: locate the chest X-rays and list every file
#
# First step of the OSEMiN series (Obtain, Scrub, Explore, Model, iNterpret). We find the dataset — Kermany et al. 2018, *Chest X-Ray Images (Pneumonia)*, CC BY 4.0 — and write a **manifest**: one row per file with its split, label, patient, hash and header facts. Every later notebook starts from this table, never from a directory walk of its own.

# %% tags=["parameters"]
# papermill injects these (one per line, so it can read them); see runner.start_notebook
DATA_DIR = None
RUN_DIR = None
PROFILE = None

# %%
from pneumo_helpers.runner import start_notebook

cfg = start_notebook(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)

import pandas as pd
from IPython.display import Markdown, display

from pneumo_helpers import dataset, obtain, plots, report

# %% [markdown]
# ## Where the data comes from
# An explicit `DATA_DIR` (or `$PNEUMO_DATA_DIR`) wins. Without one, and with Kaggle credentials
# and a network, kagglehub downloads `paultimothymooney/chest-xray-pneumonia` into its cache.
# Otherwise we fall back to the **bundled sample** (512 images, 128x128) and say so: numbers from
# the sample demonstrate the pipeline, they are not results. `setup.yml` explains how to get the
# real data. This one call does all of 01: it finds the dataset, writes `manifest.csv` and
# `not_taken.csv` into the run folder and checks the files against the dataset's checksum list;
# the cells below show what it found.

# %%
obtained = obtain.run(cfg)
manifest = obtained.manifest
print(obtained.location.message)

# %% [markdown]
# ## The manifest
# Reading headers and hashing every file is cheap (seconds for the whole Kaggle set) and gives the
# later steps what they need: the **patient id** from the file name (for leakage-free splits),
# the pneumonia **subtype** (bacterial or viral), the **sha256** (for duplicates and for model
# provenance) and the image mode and size (for scrubbing).

# %%
# NBVAL_CHECK_OUTPUT
print(f'{len(manifest)} files, {manifest["patient"].nunique()} patients, '
      f'{manifest.shape[1]} columns: {", ".join(manifest.columns)}')

# %% [markdown]
# Files that no split and class folder takes — images lying directly in `train/`, a folder that
# is not a class — are listed here and in `not_taken.csv`, never dropped in silence.

# %%
# NBVAL_CHECK_OUTPUT
skipped = obtained.not_taken
print(f'{len(skipped)} files not taken' + (':' if len(skipped) else ''))
if len(skipped):
    print(report.count_words(skipped['reason']))

# %% [markdown]
# Where the dataset comes with a sha256 list (the bundled sample does; so does the shared copy of
# the real training split), every file is checked against it: a file that was changed, or moved
# to another class folder, would quietly teach the model wrong labels.

# %%
# NBVAL_CHECK_OUTPUT
print(obtained.checksums)

# %%
Markdown(report.frame_markdown(manifest.drop(columns=['path', 'sha256']).head()))

# %% [markdown]
# ## Counts per split and class

# %%
# NBVAL_CHECK_OUTPUT
counts = dataset.count_table(manifest)
display(counts)

# %%
# NBVAL_CHECK_OUTPUT
subtypes = pd.crosstab(manifest['split'], manifest['subtype']).rename_axis(index=None, columns=None)
display(subtypes)

# %%
plots.class_counts(counts, title='Files per split and class', path=cfg.layout.figure('01_counts'));

# %% [markdown]
# ## What this tells us
# - PNEUMONIA outnumbers NORMAL about 3 to 1 in training: accuracy alone would reward a model
#   that always says "pneumonia", so we report sensitivity, specificity and ROC AUC, and compare
#   rebalancing strategies in 04.
# - Kaggle's own validation split, where a copy has one, holds only 16 images — far too few to
#   choose a model or a threshold. 02 cuts a larger one from training, **by patient**.
# - The file name carries the patient: several images of one child must never sit on both sides
#   of a split.
