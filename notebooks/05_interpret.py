# %% [markdown]
# # 05 · Interpret: honest evaluation, errors and explanations
#
# We load the model chosen in 04 (or the shipped one with `PNEUMO_MODEL=shipped`), evaluate it on validation, on the test split no choice has seen and, when given, on labelled films from another batch or site, all **at the threshold chosen on validation**; then calibration, robustness, the most confident mistakes, and where the model looks (LIME and Grad-CAM).

# %% tags=["parameters"]
# papermill injects these (one per line, so it can read them); see runner.start_notebook
DATA_DIR = None
RUN_DIR = None
PROFILE = None

# %%
from pneumo_helpers.runner import start_notebook

cfg = start_notebook(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)

import pandas as pd
from IPython.display import Markdown

from pneumo_helpers import (attention, evaluate, explain, external, findings, gate, gradcam,
                            interpret, lime_explain, model_plots, report, scorecard,
                            selection, shifts)
from pneumo_helpers.recipe import model_words, rule_words

# %%
loaded = selection.interpreted_model(cfg)  # cfg.model: None = 04's choice, 'shipped', or a name
print(f'model: {model_words(loaded.path.name)}, reading {loaded.image_size} px films; '
      f'threshold {loaded.threshold:.3f}, chosen on validation: {rule_words(loaded.threshold_rule)}')

# %%
scored = interpret.score_splits(cfg, loaded)  # val, test and, when given, the external films
test = scored['test']
print('test split:', report.test_source(pd.read_csv(cfg.layout.clean_manifest),
                                        is_sample=cfg.profile == 'sample'))

# %% [markdown]
# ## What `pneumo` would refuse to label
# `pneumo predict` abstains on an image that does not look like a chest film (its input check:
# grey, many grey levels, a chest's layout, upright). Here every film of
# each split is scored anyway; this says how many the command would have left without a label.

# %%
refused = {split: gate.abstentions(s.films) for split, s in scored.items()}
Markdown('\n'.join(f'- {split}: {len(found)} of {len(scored[split].films)} films'
                    + (f" (e.g. {scored[split].rows['path'].iloc[next(iter(found))].split('/')[-1]}: "
                       f"{next(iter(found.values()))})" if found else '')
                    for split, found in refused.items()))

# %% [markdown]
# ## Metrics with 95% intervals
# Each interval resamples **patients** (all images of a child together), since images of one child
# are not independent. The threshold comes from validation and is applied unchanged to test.

# %%
tables = {split: evaluate.evaluate(s.y, s.p, threshold=loaded.threshold,
                                   groups=s.rows['patient'], n_boot=1000, seed=cfg.seed)
          for split, s in scored.items()}
evaluate.write_run_metrics(tables, cfg.layout, threshold=loaded.threshold,
                           rule=loaded.threshold_rule, model=loaded.path.name)
Markdown(report.results_markdown(cfg.layout.root))

# %% [markdown]
# ## Which films measured each figure, and what they chose
# Validation chose this model's epochs and threshold (and, in 04, the model); the test split
# chose nothing. The external films chose nothing in this run, but half A of the official test
# split chose the full profile's recipe in earlier sweeps, so it is not new films: only the
# locked half B is. The shipped model's rows come from its folder and, when one names its model
# file, from the receipt of the official split's locked half.

# %%
Markdown(scorecard.markdown(scorecard.run_lines(cfg.layout.root)
                            + scorecard.shipped_lines(evaluations=cfg.evaluations_dir)))

# %% [markdown]
# ## Validation against new films
# With an external folder the same metrics, at the same validation threshold, on films from
# another batch (here the official test split's half A, from the same hospital); the gap between
# the two columns is what validation cannot see.

# %%
Markdown('\n'.join(f'- {line}' for line in external.gap_lines(tables))
         or 'No external folder given (`PNEUMO_EXTERNAL_DIR`): only internal splits are scored.')

# %% [markdown] tags=["ci-check"]
# A check CI compares on every run: the test ROC AUC against a floor every healthy run of this
# profile clears (`cfg.min_test_auc`), and whether the model calls both classes on test. Images
# scaled the wrong way, a model that stopped learning or a threshold that no longer fits fail
# here. (Left out of the reviewer PDF.)

# %% tags=["ci-check"]
# NBVAL_CHECK_OUTPUT
print(evaluate.floor_check('test ROC AUC', tables['test'].set_index('metric').loc['roc_auc', 'value'],
                           cfg.min_test_auc))
called = sorted(set(loaded.label(test.p)))
print('classes called on test:', ', '.join(called))

# %%
cm = evaluate.confusion(test.y, test.calls)

# %% [markdown]
# ## The test split at the validation threshold: confusion matrix
# Counts, and each row as rates (the share of each true class given each label).

# %%
model_plots.confusion_matrix_plot(cm, path=cfg.layout.figure('05_confusion'));

# %% [markdown]
# Rows are the truth, columns the prediction. The off-diagonal cells are the two kinds of error:
# normal children flagged (false positives, costly in follow-up) and pneumonia missed (false
# negatives, costly in harm).

# %% [markdown]
# ## ROC and precision-recall curves (test split)
# Left, the ROC curve: sensitivity against the false-positive rate (1 − specificity) as the
# threshold sweeps from 1 to 0; the area under it is the chance that a random pneumonia image
# scores higher than a random normal one. Right, precision (the share of pneumonia calls that are
# right) against recall (sensitivity), which shows the cost of false alarms more plainly when
# pneumonia is the majority class.

# %%
model_plots.roc_pr_curves(test.y, test.p, threshold=loaded.threshold, path=cfg.layout.figure('05_roc_pr'));

# %% [markdown]
# The marked point is where the validation-chosen threshold lands on the test curves. How far it
# sits from the test curve's best trade-off shows how well a threshold chosen on one split
# transfers to another — the question every new hospital would face.

# %% [markdown]
# ## Calibration (test split)
# Test images are binned by their predicted P(pneumonia); each point is a bin's mean prediction
# (x) against the share of pneumonia actually in it (y); the bars below count the images per bin.
# Calibration matters because a threshold, and any reader of a probability, trusts its scale.

# %%
model_plots.reliability_diagram(test.y, test.p, path=cfg.layout.figure('05_calibration'));
bins = interpret.calibration(test, path=cfg.layout.test_calibration)
Markdown(evaluate.calibration_sentence(bins))

# %% [markdown]
# A calibrated model's points lie on the diagonal: among images given P(pneumonia) = 0.8, 80% have
# pneumonia. Points below the diagonal mean over-confidence in pneumonia, above it
# under-confidence; bins holding a handful of images (see the counts) say little.

# %% [markdown]
# ## Predicted probabilities per class (test split)

# %%
model_plots.probability_histogram(test.y, test.p, threshold=loaded.threshold, path=cfg.layout.figure('05_probabilities'));

# %% [markdown]
# Predicted P(pneumonia) per true class, with the threshold as a line: two well-separated humps
# mean confident, correct calls. NORMAL films right of the line are false alarms and pneumonia
# films left of it are misses (the confusion matrix counts both); moving the threshold trades
# one for the other.

# %% [markdown]
# ## The most confident mistakes

# %%
model_plots.error_gallery(test.films, test.y, test.p, threshold=loaded.threshold, path=cfg.layout.figure('05_errors'));

# %% [markdown]
# Top row: normal images the model called pneumonia, most confident first; bottom row: pneumonia
# images it called normal, most confident first. The frame has the true class's colour (blue
# NORMAL, orange PNEUMONIA) and the title gives P(pneumonia); the threshold is in the heading.
# Confident errors are where to look for label noise, unusual exposures, or shortcuts such as
# markers and text burned into the image.

# %% [markdown]
# ## The models compared in 04

# %%
model_plots.model_comparison(selection.read_candidates(cfg.layout.models), metric=['roc_auc', 'brier'], path=cfg.layout.figure('05_model_comparison'));

# %% [markdown]
# Validation ROC AUC and Brier score of every model trained in 04, with 95% intervals: the chosen
# model should sit at the top for AUC and the bottom for Brier; overlapping intervals mean the
# validation split cannot tell those candidates apart.

# %% [markdown]
# ## Robustness: the validation images as another X-ray system might make them
# Validation images come from the same hospital as the training images, so validation metrics
# cannot show what happens on other films — where published models lose specificity. Here every
# validation image is shifted in one plausible way (exposure curve, detector sharpness,
# resolution, local contrast equalisation (CLAHE), an unsharp mask that sharpens edges, noise) or
# framed differently (border crops, zoom-out with padding, translations) and the model is
# scored again **at the unchanged threshold**. A proxy, not the real shift: it ranks models by
# robustness without looking at any test split.

# %%
stress = interpret.stress(loaded, scored['val'], path=cfg.layout.val_shifts)
Markdown(report.frame_markdown(stress))

# %% [markdown]
# The border crops as a curve: a model that reads the lungs keeps its three lines flat; one that
# learned the field of view calls more films pneumonia as the crop tightens (specificity falls,
# sensitivity rises).

# %%
model_plots.crop_curve(shifts.crop_curve(stress), threshold=loaded.threshold, path=cfg.layout.figure('05_crop_curve'));

# %% [markdown]
# ROC AUC says whether the ranking of images survives a shift; sensitivity and specificity say
# whether the *threshold* does. The mean P of NORMAL films creeping up
# is the early sign of the failure seen on the official test split: normal films called pneumonia.

# %% [markdown]
# ## Why did the model say that? LIME and Grad-CAM
# For the first true positive, true negative, false positive and false negative of the test split
# (when they exist; not hand-picked), one column each; rows: the film with its P(pneumonia) (a case is a
# positive when P reaches the validation threshold, not 0.5); LIME, which blanks regions of the
# film at random and sees how P moves: the five regions that moved it most in each direction
# (regions cut along edges in the film; green pushes towards pneumonia, red towards normal); and
# Grad-CAM, which traces the score back to where the last convolution layers found their evidence
# (warm colours: the regions that raised the score of the class the model predicted).

# %%
# NBVAL_CHECK_OUTPUT
picked = explain.pick_cases(test.y, test.p, threshold=loaded.threshold)
print('Films explained, the first of each kind in the test split:', ', '.join(picked))

# %%
images = test.films[list(picked.values())]  # uint8 films, as the explainers take them
lime = lime_explain.LimeExplainer(loaded.model, num_samples=cfg.lime_samples,
                                  threshold=loaded.threshold, random_state=cfg.seed)
heatmaps = gradcam.grad_cam(loaded.model, images[..., None], threshold=loaded.threshold)
rows = [(img, lime.explain(img), heat, name) for img, heat, name in zip(images, heatmaps, picked)]
model_plots.explanation_panel(rows, path=cfg.layout.figure('05_explanations'));

# %% [markdown]
# Four films are anecdotes. Over the whole test split: the share of each Grad-CAM map's heat inside
# the central region (the film without a strip of 15 % of its side on every edge, where the lungs
# lie), by true class and by whether the call was right. A map spread evenly would put about half
# of its heat there (the exact share is under the table); a map with less than half inside sits
# mostly on the border strips (neck, shoulders, film edges, markers).

# %%
heat, uniform = interpret.gradcam_heat(loaded, test, path=cfg.layout.gradcam_heat)
Markdown(attention.markdown(heat, uniform=uniform))

# %% [markdown]
# ## Findings, from this run's numbers

# %%
Markdown('\n'.join(f'- {line}' for line in findings.interpretation(
    tables, cm=cm, stress=stress, heat=heat, uniform=uniform,
    threshold=loaded.threshold, sample=cfg.profile == 'sample')))

# %% [markdown]
# ## Recommendations
# - Judge the model on data from other hospitals and devices before trusting any figure here;
#   the Kermany images come from one centre, and specificity is what suffers first on new data.
# - Do not carry the validation threshold to a new site: choose one on the site's own labelled
#   films (`pneumo calibrate DIR`, at least 50 per class), never on the films you then report.
# - Read the explanations of errors: a pattern of attention outside the lungs calls for masking
#   or cropping the lung fields before training.
# - **Not for clinical use.**
