# %% [markdown]
# # 05 · Interpret: honest evaluation, errors and explanations
#
# We load the model chosen in 04 (or the shipped one with `PNEUMO_MODEL=shipped`), evaluate it on validation and on the held-out test split **at the threshold chosen on validation**, look at calibration and the most confident mistakes, and explain individual predictions with LIME and Grad-CAM.

# %% tags=["parameters"]
# Parameters (papermill injects them); None: $PNEUMO_<NAME>, else the bundled sample.
DATA_DIR = None  # dataset folder in the Kaggle layout (train/val/test)
RUN_DIR = None   # folder for every artifact of this run; default runs/<profile>
PROFILE = None   # 'sample' (small, fast) or 'full'; default: 'full' if DATA_DIR


# %%
from pneumo_helpers.runner import start_notebook

cfg = start_notebook(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)

import pandas as pd
from IPython.display import Markdown

from pneumo_helpers import (balance, data, evaluate, experiment, explain, external,
                            generators, plots, shifts)

# %%
loaded = experiment.interpreted_model(cfg)  # cfg.model: None = 04's choice, 'shipped', or a name
print(f'model: {loaded.path.name}; input {loaded.image_size}px; '
      f'threshold {loaded.threshold:.3f} ({loaded.threshold_rule}, chosen on validation)')

# %%
clean = pd.read_csv(cfg.layout.clean_manifest)
sets = {split: clean[clean['split'] == split].reset_index(drop=True) for split in ('val', 'test')}
if cfg.external_dir:  # films from another site or batch, labelled: scored like the others
    sets['external'] = external.labelled_rows(cfg.external_dir)
splits, probs, pixels = {}, {}, {}
for split, rows in sets.items():
    pixels[split] = generators.load_images(rows, image_size=loaded.image_size,
                                           cache_dir=cfg.layout.cache)[..., 0]
    splits[split], probs[split] = rows, loaded.predict(pixels[split])
y = {split: balance.encode_labels(rows['label']) for split, rows in splits.items()}
test_origin = clean.loc[clean['split'] == 'test', 'orig_split'].unique()
print('test split:', 'the dataset\'s own test split' if list(test_origin) == ['test']
      else 'carved by patient from the training data (no official test split given)')

# %% [markdown]
# ## Metrics with 95% intervals
# Each interval resamples **patients** (all images of a child together), since images of one child
# are not independent. The threshold comes from validation and is applied unchanged to test.

# %%
tables = {split: evaluate.evaluate(y[split], probs[split], threshold=loaded.threshold,
                                   groups=splits[split]['patient'], n_boot=1000, seed=cfg.seed)
          for split in splits}
evaluate.write_run_metrics(tables, cfg.layout, threshold=loaded.threshold,
                           rule=loaded.threshold_rule, model=loaded.path.name)
both = pd.concat({s: t.set_index('metric')[['value', 'ci_low', 'ci_high']] for s, t in tables.items()},
                 axis=1)
print(both.round(3).to_string())

# %% [markdown]
# ## Validation against new films
# With an external folder the same metrics, at the same validation threshold, on films from
# another site or batch; the gap between the two columns is what validation cannot see.

# %%
Markdown('\n'.join(f'- {line}' for line in external.gap_lines(tables))
         or 'No external folder given (`PNEUMO_EXTERNAL_DIR`): only internal splits are scored.')

# %% [markdown]
# A check CI compares on every run: the test ROC AUC against a floor every healthy run of this
# profile clears (`cfg.min_test_auc`), and whether the model calls both classes on test. Images
# scaled the wrong way, a model that stopped learning or a threshold that no longer fits fail
# here.

# %%
# NBVAL_CHECK_OUTPUT
print(evaluate.floor_check('test ROC AUC', tables['test'].set_index('metric').loc['roc_auc', 'value'],
                           cfg.min_test_auc))
called = sorted({data.CLASSES[int(p >= loaded.threshold)] for p in probs['test']})
print('classes called on test:', ', '.join(called))

# %%
cm = evaluate.confusion(y['test'], probs['test'] >= loaded.threshold)
print(cm.to_string())

# %% [markdown]
# ## The test split at the validation threshold: confusion matrix
# The same counts as a picture, with each row also as rates (the share of each true class given
# each label).

# %%
plots.confusion_matrix_plot(cm, path=cfg.layout.figure('05_confusion'));

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
plots.roc_pr_curves(y['test'], probs['test'], threshold=loaded.threshold, path=cfg.layout.figure('05_roc_pr'));

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
plots.reliability_diagram(y['test'], probs['test'], path=cfg.layout.figure('05_calibration'));

# %% [markdown]
# A calibrated model's points lie on the diagonal: among images given P(pneumonia) = 0.8, 80% have
# pneumonia. Points below the diagonal mean over-confidence in pneumonia, above it
# under-confidence; bins holding a handful of images (see the counts) say little.

# %% [markdown]
# ## Predicted probabilities per class (test split)

# %%
plots.probability_histogram(y['test'], probs['test'], threshold=loaded.threshold, path=cfg.layout.figure('05_probabilities'));

# %% [markdown]
# Predicted P(pneumonia) per true class, with the threshold as a line: two well-separated humps
# mean confident, correct calls; NORMAL images piled up just above the line are the false alarms
# a slightly higher threshold would remove — at the cost of the pneumonia images just below it.

# %% [markdown]
# ## The most confident mistakes

# %%
plots.error_gallery(pixels['test'], y['test'], probs['test'], threshold=loaded.threshold, path=cfg.layout.figure('05_errors'));

# %% [markdown]
# Top row: normal images the model called pneumonia, most confident first; bottom row: pneumonia
# images it called normal, most confident first. The frame has the true class's colour (blue
# NORMAL, orange PNEUMONIA) and the title gives P(pneumonia); the threshold is in the heading.
# Confident errors are where to look for label noise, unusual exposures, or shortcuts such as
# markers and text burned into the image.

# %% [markdown]
# ## The models compared in 04

# %%
plots.model_comparison(experiment.read_candidates(cfg.layout.models), metric=['roc_auc', 'brier'], path=cfg.layout.figure('05_model_comparison'));

# %% [markdown]
# Validation ROC AUC and Brier score of every model trained in 04, with 95% intervals: the chosen
# model should sit at the top for AUC and the bottom for Brier; overlapping intervals mean the
# validation split cannot tell those candidates apart.

# %% [markdown]
# ## Robustness: the validation images as another X-ray system might make them
# Validation images come from the same hospital as the training images, so validation metrics
# cannot show what happens on other films — where published models lose specificity. Here every
# validation image is shifted in one plausible way (exposure curve, detector sharpness,
# resolution, CLAHE processing, noise) or framed differently (border crops, zoom-out with padding,
# translations; see `pneumo_helpers.shifts`) and the model is
# scored again **at the unchanged threshold**. A proxy, not the real shift: it ranks models by
# robustness without looking at any test split.

# %%
stress = shifts.stress_test(loaded.predict, pixels['val'], y['val'], threshold=loaded.threshold)
stress.to_csv(cfg.layout.val_shifts, index=False)
print(stress.round(3).to_string(index=False))

# %% [markdown]
# The border crops as a curve: a model that reads the lungs keeps its three lines flat; one that
# learned the field of view calls more films pneumonia as the crop tightens (specificity falls,
# sensitivity rises).

# %%
plots.crop_curve(shifts.crop_curve(stress), threshold=loaded.threshold, path=cfg.layout.figure('05_crop_curve'));

# %% [markdown]
# ROC AUC says whether the ranking of images survives a shift; sensitivity and specificity say
# whether the *threshold* does. `mean_p_normal` (the mean P(pneumonia) of normal films) creeping up
# is the early sign of the failure seen on the official test split: normal films called pneumonia.

# %% [markdown]
# ## Why did the model say that? LIME and Grad-CAM
# For the first true positive, true negative, false positive and false negative of the test split
# (when they exist; not hand-picked), one column each; rows: the film with its P(pneumonia) (a case is a
# positive when P reaches the validation threshold, not 0.5), LIME's five strongest superpixels
# (SLIC segments that follow the lung outline; green pushes towards pneumonia, red towards normal),
# and Grad-CAM on the last convolutional block (warm colours: the regions whose features raised
# the score of the class the model predicted).

# %%
# NBVAL_CHECK_OUTPUT
picked = explain.pick_cases(y['test'], probs['test'], threshold=loaded.threshold)
print('explained:', ', '.join(picked))

# %%
images = pixels['test'][list(picked.values())].astype('float32') / 255.0
lime = explain.LimeExplainer(loaded.model, num_samples=cfg.lime_samples,
                             threshold=loaded.threshold, random_state=cfg.seed)
heatmaps = explain.grad_cam(loaded.model, images[..., None], threshold=loaded.threshold)
rows = [(img, lime.explain(img), heat, name) for img, heat, name in zip(images, heatmaps, picked)]
plots.explanation_panel(rows, path=cfg.layout.figure('05_explanations'));

# %% [markdown]
# Where both explainers point into the lung fields the model is using the right evidence; where
# they light up the image border, the shoulders or a text marker, the prediction rests on a
# shortcut that will not transfer to other hospitals.

# %% [markdown]
# ## Findings, from this run's numbers

# %%
t, v = tables['test'].set_index('metric'), tables['val'].set_index('metric')
def fmt(table, metric):
    row = table.loc[metric]
    return f"{row['value']:.3f} (95% CI {row['ci_low']:.3f}–{row['ci_high']:.3f})"
fp, fn = int(cm.iloc[0, 1]), int(cm.iloc[1, 0])
Markdown(f"""
- On the test split ({len(y['test'])} images) the model reached ROC AUC {fmt(t, 'roc_auc')},
  accuracy {fmt(t, 'accuracy')}, sensitivity {fmt(t, 'recall')} and specificity
  {fmt(t, 'specificity')} at the validation threshold {loaded.threshold:.3f}.
- Validation ROC AUC was {fmt(v, 'roc_auc')}; the difference to test
  ({round(t.loc['roc_auc', 'value'], 3) - round(v.loc['roc_auc', 'value'], 3):+.3f}) is the price of moving from the
  split the threshold was chosen on to unseen patients.
- It flagged {fp} normal image(s) as pneumonia and missed {fn} pneumonia image(s).
- Brier score on test {fmt(t, 'brier')} (0 is perfect; 0.25 is a coin flip at 50/50).
- Under the acquisition and framing shifts of validation images, specificity ranged
  {stress['specificity'].min():.3f}–{stress['specificity'].max():.3f} (lowest:
  {stress.loc[stress['specificity'].idxmin(), 'shift']}) and sensitivity
  {stress['recall'].min():.3f}–{stress['recall'].max():.3f} (lowest:
  {stress.loc[stress['recall'].idxmin(), 'shift']}) at the same threshold.
{'- **This run used the bundled sample**: these numbers demonstrate the pipeline only.' if cfg.profile == 'sample' else ''}
""")

# %% [markdown]
# ## Recommendations
# - Judge the model on data from other hospitals and devices before trusting any figure here;
#   the Kermany images come from one centre, and specificity is what suffers first on new data.
# - Keep the threshold chosen on validation; re-choose it (on a validation set from the new site)
#   rather than on test results when moving to new data.
# - Read the explanations of errors: a pattern of attention outside the lungs calls for masking
#   or cropping the lung fields before training.
# - **Not for clinical use.**
