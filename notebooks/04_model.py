# %% [markdown]
# # 04 · Model: baseline vs five-block CNN, four rebalancing strategies, ImageNet backbones where their weights can be had, one choice
#
# We train a small baseline CNN and the five-block CNN, compare the four rebalancing strategies and, when their ImageNet weights are on the machine or can be downloaded, three ImageNet backbones fine-tuned on these films, all on the **patient-level validation split**, and choose the final configuration on validation only — by ROC AUC, with calibration (Brier score) breaking near-ties. The test split is not touched here. Every model folder holds `model.keras`, its `config.json` (settings, seed, library versions, manifest hash, timings), its history and its validation metrics.

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

from pneumo_helpers import dataset, external, model_plots, report, selection
from pneumo_helpers.metrics_report import METRIC_LABELS
from pneumo_helpers.recipe import model_words

# %%
# NBVAL_CHECK_OUTPUT
clean = pd.read_csv(cfg.layout.clean_manifest)
train_rows, val_rows = (dataset.split_rows(clean, split) for split in ('train', 'val'))
print(f'train {len(train_rows)} images, validation {len(val_rows)} images')

# %% [markdown]
# ## Candidates
# - **baseline**: three plain convolution blocks and a dense head — what a first attempt looks like.
# - **five_block**: five blocks of convolution + batch normalisation (momentum 0.9) + max-pooling,
#   separable convolutions from block 2 on, global average pooling and dropout; each image's
#   contrast is standardised inside the model, so exposure differences between devices matter less.
# - Rebalancing: `none`, `undersample`, `oversample`, `class_weight` (see 03).
# - **EfficientNetB0, ResNet50V2, DenseNet121**: `keras.applications` backbones with their
#   ImageNet weights under the same small head, trained in two stages — the head on the frozen
#   backbone, then the backbone's top layers too at a hundredth of the learning rate. The grey
#   film is repeated into three channels and put through the backbone's own preprocessing inside
#   the model, so 05's Grad-CAM and LIME and the LiteRT export take them like any other model.
#   Their weights come from Keras' cache (`~/.keras/models`, or `$KERAS_HOME/models`), downloaded
#   there when the machine can; otherwise the candidate is **skipped** with one line saying why and
#   the comparison goes on without it. What they cost on two CPU cores: `docs/transfer.md`.
#
# The list is `cfg.candidates` (`PNEUMO_CANDIDATES`, e.g. `five_block-oversample,DenseNet121`).
#
# All train on the same cached, augmented input stream with the same seed, with early stopping on
# validation ROC AUC and the best epoch kept. In full runs the five-block candidates first share
# one contrastive pretraining of their encoder on the training films, labels unused
# (`cfg.pretrain_epochs`; `docs/generalisation.md`); the baseline starts from scratch.

# %%
import logging
logging.getLogger('tensorflow').setLevel(logging.ERROR)  # retracing notices: one per new model

results = selection.compare_candidates(train_rows, val_rows, cfg)

# %% [markdown]
# ## The candidates on new films
# Validation is carved from the training films and cannot see what films from another batch or
# site do. With an external folder (`PNEUMO_EXTERNAL_DIR`, `pneumo run --external DIR`), every
# candidate is also scored there at its own validation threshold. Here it informs; the choice
# below stays on validation, so the external films choose nothing in this run. (Half A of the
# official test split did choose the full profile's recipe, in earlier sweeps.)

# %%
if cfg.external_dir:
    external_rows = external.labelled_rows(cfg.external_dir)
    display(Markdown(report.frame_markdown(
        external.score_candidates(results, external_rows, cache_dir=cfg.layout.cache).rename(index=model_words), index=True)))
else:
    print('No external folder given: the candidates are judged on validation only.')

# %% [markdown]
# ## Training curves
# Loss, accuracy and ROC AUC per epoch for every candidate (one colour each); solid lines are the
# training stream (augmented, rebalanced), dashed lines the validation split. They show whether a
# candidate learned at all, whether it overfits, and whether more epochs would help.

# %%
model_plots.training_curves({r.name: r.history for r in results}, path=cfg.layout.figure('04_training_curves'));

# %% [markdown]
# A dashed curve that flattens or turns up (loss) while its solid twin keeps improving is
# overfitting: more epochs stop paying, and early stopping keeps the best validation epoch. A
# dashed curve far below the solid one from the first epoch means validation looks different from
# what training sees. With a few hundred images and a few epochs, as on the bundled sample, such
# curves are noisy and show only that the pipeline trains.

# %% [markdown] tags=["ci-check"]
# ## Did each architecture learn?
# A check CI compares on every run: the best validation ROC AUC of each architecture against a
# floor every healthy run of this profile clears (`cfg.min_val_auc`). It fails when a change
# stops a network from learning — a normalisation setting, labels read the wrong way round —
# even when another architecture wins the comparison. (Left out of the reviewer PDF.)

# %% tags=["ci-check"]
# NBVAL_CHECK_OUTPUT
table = selection.compare(results)
for line in selection.learning_checks(table, floor=cfg.min_val_auc):
    print(line)

# %% [markdown]
# ## Comparison on validation
# One row per candidate trained; the line under the table names any that were skipped (the
# training cell above said why).

# %%
comparison = selection.comparison_table(results)
trained = comparison['status'] == 'trained'
display(Markdown(report.frame_markdown(comparison[trained].drop(columns='status').rename(index=model_words), index=True)))
if not trained.all():
    print('Skipped:', '; '.join(map(model_words, comparison.index[~trained])))

# %% [markdown]
# The same comparison as a chart: each dot is a candidate's validation value, each bar its 95%
# interval (patients resampled). ROC AUC: higher is better ranking of images; Brier score: lower is
# better calibrated probabilities; specificity: the share of normal images called normal at the
# candidate's validation threshold.

# %%
model_plots.model_comparison(table, metric=['roc_auc', 'brier', 'specificity'], path=cfg.layout.figure('04_model_comparison'));

# %% [markdown]
# Sensitivity and specificity here are at each model's own validation-chosen threshold (the
# run's threshold rule: the highest threshold that keeps validation sensitivity at 0.95 or more,
# the specificity-friendly end), so they are comparable; ROC AUC does not depend on a threshold at all. Where two candidates'
# intervals overlap, this validation split does not establish that one is better. The choice rule
# below takes the best point estimate and, among candidates within 0.005 of it, the best
# calibrated (Brier score), which separates candidates more clearly than ROC AUC once all of them
# rank images almost perfectly.

# %% [markdown]
# ## The choice
# The best validation ROC AUC wins; candidates within 0.005 of it are separated by the Brier score
# (better calibrated probabilities make the validation threshold travel better). When the full
# profile allows more epochs than the comparison used, the winner is retrained with them.

# %%
chosen = selection.choose(results, train_rows, val_rows, cfg)
print(f'chosen: {model_words(chosen.name)} (threshold {chosen.threshold:.3f} chosen on validation)')
Markdown(report.frame_markdown(chosen.metrics.set_index('metric')[['value', 'ci_low', 'ci_high']]
                               .rename(index=METRIC_LABELS, columns={
                                   'value': 'validation', 'ci_low': '95 % CI from', 'ci_high': 'to'}),
                               index=True))

# %% [markdown]
# ## What this tells us, from this run's numbers

# %%
Markdown('\n'.join(f'- {line}' for line in selection.findings(table, selection.pick_best(table))) + (
    '\n- **This run used the bundled sample**: the comparison demonstrates the pipeline; its '
    'ranking of candidates means little.' if cfg.profile == 'sample' else ''))

# %% [markdown]
# The comparison above, not a rule of thumb, decides the rebalancing strategy and architecture for
# this run; the chosen model, its threshold and its validation metrics are what 05 evaluates on the
# test split, which no choice has seen. Validation accuracy alone would mislead: a model can be excellent on a
# random cut of the training data and still call many normal images from another device
# pneumonia, so 05 looks at specificity, calibration and explanations too.
