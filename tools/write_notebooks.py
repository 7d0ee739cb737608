"""Write the five notebooks' cells (narrative + code) from this one file.

The notebooks in ``notebooks/`` are the product; this script is how their *source* is kept
reviewable as plain Python and free of copy-paste (the shared opening cells come from one
function). After editing, run ``make notebooks`` to regenerate and re-execute them on the
bundled sample, which refreshes the stored outputs that nbval compares.

    python tools/write_notebooks.py        # writes notebooks/0*.ipynb without outputs
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHECK = "# NBVAL_CHECK_OUTPUT\n"


def opening(title: str, intro: str, imports: str) -> list:
    """Title, parameters (papermill-injectable) and the run config, shared by every notebook."""
    return [
        new_markdown_cell(f"# {title}\n\n{intro}"),
        new_code_cell(
            "# Parameters: papermill/nbclient inject values here; None means the environment\n"
            "# variable PNEUMO_<NAME> or the default (the bundled sample).\n"
            "DATA_DIR = None  # dataset folder in the Kaggle layout (train/val/test)\n"
            "RUN_DIR = None   # folder for every artifact of this run; default runs/<profile>\n"
            "PROFILE = None   # 'sample' (small, fast) or 'full'; default: 'full' if DATA_DIR\n",
            metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import os\n\n"
            "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TensorFlow's C++ logs "
            "out of the outputs\n\n"
            "import pandas as pd\n"
            "from IPython.display import display\n"
            "from matplotlib_inline.backend_inline import set_matplotlib_formats\n\n"
            "from pneumo_helpers import RunConfig, plots\n"
            "from pneumo_helpers.config import shown_path\n"
            f"{imports}\n\n"
            "# Figures inline as JPEG: X-ray grids in PNG made the stored notebooks ~1 MB each.\n"
            "set_matplotlib_formats('jpeg', pil_kwargs={'quality': 85})\n"
            "cfg = RunConfig.from_params(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)\n"
            "print(f'profile={cfg.profile}  image_size={cfg.image_size}  epochs={cfg.epochs}  "
            "seed={cfg.seed}')\n"
            "print(f'run folder: {shown_path(cfg.run_dir)}')"),
    ]


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, check: bool = False):
    return new_code_cell((CHECK if check else "") + text.strip())


NB01 = opening(
    "01 · Obtain: locate the chest X-rays and list every file",
    "First step of the OSEMiN series (Obtain, Scrub, Explore, Model, iNterpret). We find the "
    "dataset — Kermany et al. 2018, *Chest X-Ray Images (Pneumonia)*, CC BY 4.0 — and write a "
    "**manifest**: one row per file with its split, label, patient, hash and header facts. Every "
    "later notebook starts from this table, never from a directory walk of its own.",
    "from pneumo_helpers import data",
) + [
    md("""
## Where the data comes from
An explicit `DATA_DIR` (or `$PNEUMO_DATA_DIR`) wins. Without one, and with Kaggle credentials
and a network, kagglehub downloads `paultimothymooney/chest-xray-pneumonia` into its cache.
Otherwise we fall back to the **bundled sample** (512 images, 128x128) and say so: numbers from
the sample demonstrate the pipeline, they are not results. `setup.yml` explains how to get the
real data."""),
    code("""
where = data.locate_dataset(cfg.data_dir)
print(where.message)
print(f'source: {where.source}')"""),
    md("""
## The manifest
Reading headers and hashing every file is cheap (seconds for 5,856 files) and gives the
later steps what they need: the **patient id** from the file name (for leakage-free splits),
the pneumonia **subtype** (bacterial or viral), the **sha256** (for duplicates and for model
provenance) and the image mode and size (for scrubbing)."""),
    code("""
manifest = data.build_manifest(where.path, ignore_unknown=cfg.ignore_unknown_folders)
manifest.to_csv(cfg.path('manifest.csv'), index=False)
print(f'{len(manifest)} files, {manifest["patient"].nunique()} patients, '
      f'{manifest.shape[1]} columns: {", ".join(manifest.columns)}')""", check=True),
    md("""
Files that no split and class folder takes — images lying directly in `train/`, a folder that
is not a class — are listed here and in `not_taken.csv`, never dropped in silence."""),
    code("""
skipped = data.not_taken(where.path)
skipped.to_csv(cfg.path('not_taken.csv'), index=False)
print(f'{len(skipped)} files not taken' + (':' if len(skipped) else ''))
if len(skipped):
    print(skipped['reason'].value_counts().to_string())""", check=True),
    md("""
Where the dataset comes with a sha256 list (the bundled sample does; so does the shared copy of
the real training split), every file is checked against it: a file that was changed, or moved
to another class folder, would quietly teach the model wrong labels."""),
    code("print(data.verify_checksums(manifest, where.path))", check=True),
    code("manifest.drop(columns=['path', 'sha256']).head()"),
    md("## Counts per split and class"),
    code("""
counts = data.count_table(manifest)
print(counts.to_string())""", check=True),
    code("""
subtypes = pd.crosstab(manifest['split'], manifest['subtype'])
print(subtypes.to_string())""", check=True),
    code("plots.class_counts(counts, title='Files per split and class', "
         "path=cfg.path('figures', '01_counts.png'));"),
    md("""
## What this tells us
- PNEUMONIA outnumbers NORMAL about 3 to 1 in training: accuracy alone would reward a model
  that always says "pneumonia", so we report sensitivity, specificity and ROC AUC, and compare
  rebalancing strategies in 04.
- Kaggle's own validation split holds only 16 images — far too few to choose a model or a
  threshold. 02 cuts a larger one from training, **by patient**.
- The file name carries the patient: several images of one child must never sit on both sides
  of a split."""),
]

NB02 = opening(
    "02 · Scrub: validate every image, remove duplicates, split by patient",
    "We decode every file listed in the manifest from 01, set aside the ones that cannot be "
    "used (with the reason), find exact duplicates and patients that sit in two splits, and cut "
    "a **patient-level, class-stratified** validation split. Nothing on disk is changed; the "
    "result is `clean_manifest.csv` plus one table per problem in the run folder.",
    "from pneumo_helpers import data",
) + [
    code("""
manifest = pd.read_csv(cfg.path('manifest.csv'))
result = data.scrub(manifest, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                    seed=cfg.split_seed)
result.bad.to_csv(cfg.path('bad_files.csv'), index=False)
result.duplicates.to_csv(cfg.path('duplicates.csv'), index=False)
result.dropped.to_csv(cfg.path('dropped.csv'), index=False)
result.clean.to_csv(cfg.path('clean_manifest.csv'), index=False)"""),
    md("""
## Files that cannot be used
Each file is fully decoded (at reduced scale, which still reads every byte), so truncated and
corrupt JPEGs, zero-byte files and non-images show up here with the reason. RGBA, 16-bit and
palette images are *not* errors: the loader converts them to 8-bit grayscale."""),
    code("""
print(f'{len(result.bad)} bad file(s)')
display(result.bad) if len(result.bad) else None""", check=True),
    code("""
print(manifest['mode'].value_counts().to_string())""", check=True),
    md("""
## Duplicates and leakage
Identical bytes under two names would let a model be validated on an image it trained on. We
keep one copy (the test copy when one exists) and drop patients of the training pool who also
appear in the test split."""),
    code("""
n_groups = result.duplicates['sha256'].nunique()
print(f'{len(result.duplicates)} files in {n_groups} groups of identical images')
print(result.duplicates['kind'].value_counts().to_string())
print(f'{len(result.leaks)} patient(s) in more than one original split')
print(result.dropped['reason'].value_counts().to_string())""", check=True),
    md("""
## The new split
Kaggle's 16 validation images are folded into training; validation is cut from that pool by
patient with scikit-learn's `StratifiedGroupKFold` (seeded), so every image of a child lands in
one split and the class ratio is kept. Where a dataset has no test split, one is cut the same
way first. The official test split is never used for any choice."""),
    code("""
print(result.before_after(manifest).to_string())""", check=True),
    code("""
clean = result.clean
per_split = clean.groupby('split').agg(images=('path', 'size'), patients=('patient', 'nunique'))
print(per_split.loc[[s for s in data.SPLITS if s in per_split.index]].to_string())
assert data.patients_in_several_splits(clean).empty, 'a patient sits in two splits'
print('no patient in two splits')""", check=True),
    code("plots.class_counts(data.count_table(clean), title='Clean images per split and class', "
         "path=cfg.path('figures', '02_clean_counts.png'));"),
    md("""
## What this tells us
- The bad-file, duplicate and leakage tables above are the complete list of what was left out,
  and why; the files themselves are untouched.
- Validation now has enough images of both classes to compare models and choose a threshold;
  the class imbalance is the same in every split, so validation metrics are comparable to
  training ones."""),
]


NB03 = opening(
    "03 · Explore: class balance, what the images look like, and the input pipeline",
    "We look at the clean data from 02 before modelling: how unbalanced the classes are and what "
    "each rebalancing strategy would feed the model, what NORMAL, bacterial and viral pneumonia "
    "look like, how intensities and sizes differ between classes, and what a training batch looks "
    "like after augmentation.",
    "import numpy as np\n\nfrom pneumo_helpers import balance, data, generators\n"
    "from pneumo_helpers.images import read_gray",
) + [
    code("""
clean = pd.read_csv(cfg.path('clean_manifest.csv'))
train = clean[clean['split'] == 'train'].reset_index(drop=True)
print(data.count_table(clean).to_string())""", check=True),
    md("""
## Class balance, before and after each rebalancing strategy
The four strategies `04_model` compares, applied to the training split: what one epoch sees.
`class_weight` keeps every image and scales the loss instead, so its counts are *weighted*."""),
    code("""
table = balance.balance_table(train['label'], seed=cfg.seed)
print(table.drop(columns='note').to_string())""", check=True),
    code("plots.class_counts(table, title='Training images per epoch, by strategy', "
         "path=cfg.path('figures', '03_balance.png'));"),
    md("""
Undersampling balances the classes by throwing away about half the pneumonia images; oversampling
and class weights keep them all. We compare the strategies on validation ROC AUC in 04 rather than
guess."""),
    md("## NORMAL, bacterial and viral pneumonia"),
    code("""
picks = pd.concat([group.sample(min(len(group), 6), random_state=cfg.seed)
                   for _, group in train.groupby('subtype')])
plots.image_grid([read_gray(p, size=128) for p in picks['path']],
                 [f"{s}\\n{pid}" for s, pid in zip(picks['subtype'], picks['patient'])],
                 title='Random training images per subtype',
                 path=cfg.path('figures', '03_examples.png'));"""),
    md("""
Normal lungs look dark and clear; bacterial pneumonia tends to show a dense, localised
consolidation, viral pneumonia a more diffuse, interstitial haze. The differences are subtle to an
untrained eye, and exposure, patient position and the annotations burned into some images (markers,
letters) vary much more than the pathology — a model can latch onto those instead."""),
    md("## Pixel intensities and the mean image"),
    code("""
pixels = generators.load_images(train, image_size=cfg.image_size, cache_dir=cfg.path('cache', 'x'))
print(f'training images as an array: {pixels.shape} {pixels.dtype}')""", check=True),
    code("plots.intensity_histograms(pixels, train['label'], "
         "path=cfg.path('figures', '03_intensity.png'));"),
    md("""
Overall brightness overlaps heavily between the classes, and pneumonia images vary more in
exposure. Brightness alone is not a usable signal, while exposure differences between devices are
a nuisance the model must learn to ignore: the models standardise each image's contrast, and
training augments brightness and contrast, so that *where* an opacity sits is what counts."""),
    code("plots.mean_images(pixels, train['label'], path=cfg.path('figures', '03_mean_images.png'));"),
    md("""
The difference image shows where the classes differ on average: the lung fields are brighter in
pneumonia (opacities), as expected — but the image borders and the neck differ too, which reflects
how the two groups were framed and exposed, not disease. A model can use such framing as a
shortcut; the explanations in 05 check whether it does."""),
    md("## Image sizes"),
    code("""
sizes = clean.assign(aspect=clean['width'] / clean['height']).groupby('label')[
    ['width', 'height', 'aspect']].describe().T
print(sizes.round(2).to_string())"""),
    code("plots.size_stats(clean, path=cfg.path('figures', '03_sizes.png'));"),
    md("""
Originals vary in size and aspect ratio (the bundled sample and the shared copy are already
square). Every image is squashed to a square at the model's input size once, when the pipeline
fills its cache; chest anatomy survives a mild change of aspect ratio."""),
    md("""
## A training batch after augmentation
Small rotations, shifts and zooms (fused into one affine transform per image) plus brightness and
contrast changes mimic different patient positions, exposures and devices. Horizontal flips stay
off: a mirrored chest (heart on the right) is not a realistic X-ray."""),
    code("""
batches = generators.make_dataset(train, image_size=cfg.image_size, batch_size=18, training=True,
                                  seed=cfg.seed, cache_dir=cfg.path('cache', 'x'))
x, y = next(iter(batches))
print(f'batch x: {tuple(x.shape)} {x.dtype.name} in [{float(x.numpy().min()):.2f}, '
      f'{float(x.numpy().max()):.2f}]; y: {tuple(y.shape)}')
plots.image_grid(list(x.numpy()), [data.CLASSES[int(v)] for v in y.numpy()],
                 title='One augmented training batch', path=cfg.path('figures', '03_augmented.png'));"""),
    md("""
## What follows for modelling
- Classes are unbalanced about 1 : 3 in every split: compare rebalancing strategies, report
  sensitivity and specificity, and pick the decision threshold on validation.
- Brightness differs between classes and between devices: standardise contrast per image and
  augment exposure so the model learns the shape and place of opacities.
- Images are grayscale: one input channel is enough and three times cheaper."""),
]
NB04 = opening(
    "04 · Model: baseline vs five-block CNN, four rebalancing strategies, one choice",
    "We train a small baseline CNN and the five-block CNN, compare the four rebalancing strategies "
    "on the **patient-level validation split**, and choose the final configuration on validation "
    "only — by ROC AUC, with calibration (Brier score) breaking near-ties. The test split is not "
    "touched here. Every model folder holds `model.keras`, its `config.json` (settings, seed, "
    "library versions, manifest hash, timings), its history and its validation metrics.",
    "import json\n\nfrom IPython.display import Markdown\n\nfrom pneumo_helpers import experiment, models",
) + [
    code("""
clean = pd.read_csv(cfg.path('clean_manifest.csv'))
train_rows = clean[clean['split'] == 'train'].reset_index(drop=True)
val_rows = clean[clean['split'] == 'val'].reset_index(drop=True)
print(f'train {len(train_rows)} images, validation {len(val_rows)} images')""", check=True),
    md("""
## Candidates
- **baseline**: three plain convolution blocks and a dense head — what a first attempt looks like.
- **five_block**: five blocks of convolution + batch normalisation (momentum 0.9) + max-pooling,
  separable convolutions from block 2 on, global average pooling and dropout; each image's
  contrast is standardised inside the model, so exposure differences between devices matter less.
- Rebalancing: `none`, `undersample`, `oversample`, `class_weight` (see 03).

All train on the same cached, augmented input stream with the same seed, with early stopping on
validation ROC AUC and the best epoch kept."""),
    code("""
import logging
logging.getLogger('tensorflow').setLevel(logging.ERROR)  # retracing notices: one per new model

candidates = [('baseline', 'class_weight')] + [('five_block', s) for s in
                                               ('none', 'undersample', 'oversample', 'class_weight')]
settings = dict(image_size=cfg.image_size, batch_size=cfg.batch_size, seed=cfg.seed,
                threshold_rule=cfg.threshold_rule, n_boot=200, cache_dir=cfg.path('cache', 'x'), verbose=0)
results = []
for model, strategy in candidates:
    result = experiment.run_candidate(train_rows, val_rows, model=model, strategy=strategy,
                                      epochs=cfg.compare_epochs,
                                      out_dir=cfg.path('models', f'{model}-{strategy}', 'x').parent,
                                      **settings)
    results.append(result)
    auc = result.metrics.set_index('metric').loc['roc_auc']
    print(f"{result.name:26s} {len(result.history)} epochs, "
          f"{result.config['mean_seconds_per_epoch']:.1f} s/epoch, val ROC AUC {auc['value']:.3f}")"""),
    md("""
## Training curves
Loss, accuracy and ROC AUC per epoch for every candidate (one colour each); solid lines are the
training stream (augmented, rebalanced), dashed lines the validation split. They show whether a
candidate learned at all, whether it overfits, and whether more epochs would help."""),
    code("plots.training_curves({r.name: r.history for r in results}, "
         "path=cfg.path('figures', '04_training_curves.png'));"),
    md("""
A dashed curve that flattens or turns up (loss) while its solid twin keeps improving is
overfitting: more epochs stop paying, and early stopping keeps the best validation epoch. A
dashed curve far below the solid one from the first epoch means validation looks different from
what training sees. On the bundled sample (a few hundred images, a few epochs) the curves are
noisy and only show that the pipeline trains; the full-data run in the reviewer PDFs is the one
to read."""),
    md("""
## Did each architecture learn?
A check CI compares on every run: the best validation ROC AUC of each architecture against a
floor every healthy run of this profile clears (`cfg.min_val_auc`). It fails when a change
stops a network from learning — a normalisation setting, labels read the wrong way round —
even when another architecture wins the comparison."""),
    code("""
table = experiment.compare(results)
for line in experiment.learning_checks(table, floor=cfg.min_val_auc):
    print(line)""", check=True),
    md("## Comparison on validation (95% intervals, patients resampled)"),
    code("""
wide = table.pivot_table(index='model', columns='metric', values='value')
print(wide[['roc_auc', 'pr_auc', 'brier', 'accuracy', 'recall', 'specificity']].round(3).to_string())"""),
    md("""
The same comparison as a chart: each dot is a candidate's validation value, each bar its 95%
interval (patients resampled). ROC AUC: higher is better ranking of images; Brier score: lower is
better calibrated probabilities; specificity: the share of normal images called normal at the
candidate's validation threshold."""),
    code("plots.model_comparison(table, metric=['roc_auc', 'brier', 'specificity'], "
         "path=cfg.path('figures', '04_model_comparison.png'));"),
    md("""
Sensitivity and specificity here are at each model's own validation-chosen threshold (the
run's `threshold_rule`: by default the highest threshold that keeps validation sensitivity at
0.95 or more, the specificity-friendly end), so they are comparable; ROC AUC does not depend on a threshold at all. Where two candidates'
intervals overlap, this validation split does not establish that one is better. The choice rule
below takes the best point estimate and, among candidates within 0.005 of it, the best
calibrated (Brier score), which separates candidates more clearly than ROC AUC once all of them
rank images almost perfectly."""),
    md("""
## Transfer learning
A pretrained backbone (EfficientNetB0 with ImageNet weights) is offered when its weights are on
this machine; nothing is ever downloaded at run time."""),
    code("""
if models.imagenet_weights_available('EfficientNetB0'):
    print('ImageNet weights found: see models.build_transfer_model / unfreeze_top to add it.')
else:
    print('Transfer learning skipped: no ImageNet weights for EfficientNetB0 in the Keras cache '
          '(offline machine).')"""),
    md("""
## The choice
The best validation ROC AUC wins; candidates within 0.005 of it are separated by the Brier score
(better calibrated probabilities make the validation threshold travel better). When the full
profile allows more epochs than the comparison used, the winner is retrained with them."""),
    code("""
best = experiment.pick_best(table)
chosen = next(r for r in results if r.name == best)
if cfg.epochs > cfg.compare_epochs:
    chosen = experiment.run_candidate(
        train_rows, val_rows, model=chosen.config['model'], strategy=chosen.config['balance'],
        epochs=cfg.epochs, name=f'{best}-final', out_dir=cfg.path('models', f'{best}-final', 'x').parent,
        **{**settings, 'n_boot': 1000})
cfg.path('models', 'chosen.json').write_text(json.dumps(
    {'model': chosen.name, 'rule': 'best validation ROC AUC; Brier within 0.005'}, indent=2))
print(f'chosen: {chosen.name} (threshold {chosen.threshold:.3f} chosen on validation)')
print(chosen.metrics.round(3).to_string(index=False))"""),
    md("## What this tells us, from this run's numbers"),
    code("""
Markdown('\\n'.join(f'- {line}' for line in experiment.findings(table, best)) + (
    '\\n- **This run used the bundled sample**: the comparison demonstrates the pipeline; its '
    'ranking of candidates means little.' if cfg.profile == 'sample' else ''))"""),
    md("""
The comparison above, not a rule of thumb, decides the rebalancing strategy and architecture for
this run; the chosen model, its threshold and its validation metrics are what 05 evaluates on the
held-out test split. Validation accuracy alone would mislead: a model can be excellent on a
random cut of the training data and still call many normal images from another device
pneumonia, so 05 looks at specificity, calibration and explanations too."""),
]

NB05 = opening(
    "05 · Interpret: honest evaluation, errors and explanations",
    "We load the model chosen in 04 (or the shipped one with `MODEL='shipped'`), evaluate it on "
    "validation and on the held-out test split **at the threshold chosen on validation**, look at "
    "calibration and the most confident mistakes, and explain individual predictions with LIME "
    "and Grad-CAM.",
    "import json\n\nimport numpy as np\nfrom IPython.display import Markdown\n\n"
    "from pneumo_helpers import (balance, evaluate, experiment, explain, generators, inference,\n"
    "                            shifts)",
) + [
    code("""
MODEL = os.environ.get('PNEUMO_MODEL')  # None: the model chosen in 04; 'shipped': the packaged one
if MODEL == 'shipped':
    loaded = inference.load_model()
    print('Using the shipped model; it was trained on the Kermany training split, so splits cut '
          'from that split overlap its training data.')
else:
    name = MODEL or json.loads(cfg.path('models', 'chosen.json').read_text())['model']
    loaded = inference.load_model(cfg.path('models', name, 'x').parent)
print(f'model: {loaded.path.name}; input {loaded.image_size}px; '
      f'threshold {loaded.threshold:.3f} ({loaded.threshold_rule}, chosen on validation)')"""),
    code("""
clean = pd.read_csv(cfg.path('clean_manifest.csv'))
splits, probs, pixels = {}, {}, {}
for split in ('val', 'test'):
    rows = clean[clean['split'] == split].reset_index(drop=True)
    pixels[split] = generators.load_images(rows, image_size=loaded.image_size,
                                           cache_dir=cfg.path('cache', 'x'))[..., 0]
    splits[split], probs[split] = rows, loaded.predict(pixels[split])
y = {split: balance.encode_labels(rows['label']) for split, rows in splits.items()}
test_origin = clean.loc[clean['split'] == 'test', 'orig_split'].unique()
print('test split:', 'the dataset\\'s own test split' if list(test_origin) == ['test']
      else 'carved by patient from the training data (no official test split given)')"""),
    md("""
## Metrics with 95% intervals
Each interval resamples **patients** (all images of a child together), since images of one child
are not independent. The threshold comes from validation and is applied unchanged to test."""),
    code("""
tables = {split: evaluate.evaluate(y[split], probs[split], threshold=loaded.threshold,
                                   groups=splits[split]['patient'], n_boot=1000, seed=cfg.seed)
          for split in ('val', 'test')}
summary = {'model': loaded.path.name}
for split, table in tables.items():
    block = evaluate.metrics_to_json(table, cfg.path('metrics', f'{split}.json'),
                                     threshold=loaded.threshold, rule=loaded.threshold_rule,
                                     split=split, model=loaded.path.name)
    summary[split] = block
cfg.path('metrics.json').write_text(json.dumps(summary, indent=2))
both = pd.concat({s: t.set_index('metric')[['value', 'ci_low', 'ci_high']] for s, t in tables.items()},
                 axis=1)
print(both.round(3).to_string())"""),
    md("""
A check CI compares on every run: the test ROC AUC against a floor every healthy run of this
profile clears (`cfg.min_test_auc`), and whether the model calls both classes on test. Images
scaled the wrong way, a model that stopped learning or a threshold that no longer fits fail
here."""),
    code("""
print(evaluate.floor_check('test ROC AUC', tables['test'].set_index('metric').loc['roc_auc', 'value'],
                           cfg.min_test_auc))
called = sorted({evaluate.CLASS_NAMES[int(p >= loaded.threshold)] for p in probs['test']})
print('classes called on test:', ', '.join(called))""", check=True),
    code("""
cm = evaluate.confusion(y['test'], probs['test'] >= loaded.threshold)
print(cm.to_string())
print(evaluate.report(y['test'], probs['test'] >= loaded.threshold))"""),
    md("""
## The test split at the validation threshold: confusion matrix
The same counts as a picture, with each row also as rates (the share of each true class given
each label)."""),
    code("plots.confusion_matrix_plot(cm, path=cfg.path('figures', '05_confusion.png'));"),
    md("""
Rows are the truth, columns the prediction. The off-diagonal cells are the two kinds of error:
normal children flagged (false positives, costly in follow-up) and pneumonia missed (false
negatives, costly in harm)."""),
    md("""
## ROC and precision-recall curves (test split)
Left, the ROC curve: sensitivity against the false-positive rate (1 − specificity) as the
threshold sweeps from 1 to 0; the area under it is the chance that a random pneumonia image
scores higher than a random normal one. Right, precision (the share of pneumonia calls that are
right) against recall (sensitivity), which shows the cost of false alarms more plainly when
pneumonia is the majority class."""),
    code("plots.roc_pr_curves(y['test'], probs['test'], threshold=loaded.threshold, "
         "path=cfg.path('figures', '05_roc_pr.png'));"),
    md("""
The marked point is where the validation-chosen threshold lands on the test curves. How far it
sits from the test curve's best trade-off shows how well a threshold chosen on one split
transfers to another — the question every new hospital would face."""),
    md("""
## Calibration (test split)
Test images are binned by their predicted P(pneumonia); each point is a bin's mean prediction
(x) against the share of pneumonia actually in it (y); the bars below count the images per bin.
Calibration matters because a threshold, and any reader of a probability, trusts its scale."""),
    code("plots.reliability_diagram(y['test'], probs['test'], "
         "path=cfg.path('figures', '05_calibration.png'));"),
    md("""
A calibrated model's points lie on the diagonal: among images given P(pneumonia) = 0.8, 80% have
pneumonia. Points below the diagonal mean over-confidence in pneumonia, above it
under-confidence; bins holding a handful of images (see the counts) say little."""),
    md("## Predicted probabilities per class (test split)"),
    code("plots.probability_histogram(y['test'], probs['test'], threshold=loaded.threshold, "
         "path=cfg.path('figures', '05_probabilities.png'));"),
    md("""
Predicted P(pneumonia) per true class, with the threshold as a line: two well-separated humps
mean confident, correct calls; NORMAL images piled up just above the line are the false alarms
a slightly higher threshold would remove — at the cost of the pneumonia images just below it."""),
    md("## The most confident mistakes"),
    code("plots.error_gallery(pixels['test'], y['test'], probs['test'], threshold=loaded.threshold, "
         "path=cfg.path('figures', '05_errors.png'));"),
    md("""
Top row: normal images the model called pneumonia, most confident first; bottom row: pneumonia
images it called normal, most confident first. The frame has the true class's colour (blue
NORMAL, orange PNEUMONIA) and the title gives P(pneumonia); the threshold is in the heading.
Confident errors are where to look for label noise, unusual exposures, or shortcuts such as
markers and text burned into the image."""),
    md("## The models compared in 04"),
    code("plots.model_comparison(experiment.read_candidates(cfg.path('models', 'x').parent), "
         "metric=['roc_auc', 'brier'], path=cfg.path('figures', '05_model_comparison.png'));"),
    md("""
Validation ROC AUC and Brier score of every model trained in 04, with 95% intervals: the chosen
model should sit at the top for AUC and the bottom for Brier; overlapping intervals mean the
validation split cannot tell those candidates apart."""),
    md("""
## Robustness: the validation images as another X-ray system might make them
Validation images come from the same hospital as the training images, so validation metrics
cannot show what happens on other films — where published models lose specificity. Here every
validation image is shifted in one plausible way (exposure curve, detector sharpness,
resolution, CLAHE processing, noise) or framed differently (border crops, zoom-out with padding,
translations; see `pneumo_helpers.shifts`) and the model is
scored again **at the unchanged threshold**. A proxy, not the real shift: it ranks models by
robustness without looking at any test split."""),
    code("""
stress = shifts.stress_test(loaded.predict, pixels['val'], y['val'], threshold=loaded.threshold)
stress.to_csv(cfg.path('metrics', 'val_shifts.csv'), index=False)
print(stress.round(3).to_string(index=False))"""),
    md("""
The border crops as a curve: a model that reads the lungs keeps its three lines flat; one that
learned the field of view calls more films pneumonia as the crop tightens (specificity falls,
sensitivity rises)."""),
    code("plots.crop_curve(shifts.crop_curve(stress), threshold=loaded.threshold, "
         "path=cfg.path('figures', '05_crop_curve.png'));"),
    md("""
ROC AUC says whether the ranking of images survives a shift; sensitivity and specificity say
whether the *threshold* does. `mean_p_normal` (the mean P(pneumonia) of normal films) creeping up
is the early sign of the failure seen on the official test split: normal films called pneumonia."""),
    md("""
## Why did the model say that? LIME and Grad-CAM
For the first true positive, true negative, false positive and false negative of the test split
(when they exist; not hand-picked), one row each: the image with its P(pneumonia) (a case is a
positive when P reaches the validation threshold, not 0.5), LIME's five strongest superpixels
(SLIC segments that follow the lung outline; green pushes towards pneumonia, red towards normal),
and Grad-CAM on the last convolutional block (warm colours: the regions whose features raised
the score of the class the model predicted)."""),
    code("""
pred = probs['test'] >= loaded.threshold
cases = {'true positive': (y['test'] == 1) & pred, 'true negative': (y['test'] == 0) & ~pred,
         'false positive': (y['test'] == 0) & pred, 'false negative': (y['test'] == 1) & ~pred}
picked = {name: int(np.flatnonzero(mask)[0]) for name, mask in cases.items() if mask.any()}
print('explained:', ', '.join(picked))""", check=True),
    code("""
images = pixels['test'][list(picked.values())].astype('float32') / 255.0
lime = explain.LimeExplainer(loaded.model, num_samples=cfg.lime_samples,
                             threshold=loaded.threshold, random_state=cfg.seed)
heatmaps = explain.grad_cam(loaded.model, images[..., None])
rows = [(img, lime.explain(img), heat, name) for img, heat, name in zip(images, heatmaps, picked)]
plots.explanation_panel(rows, path=cfg.path('figures', '05_explanations.png'));"""),
    md("""
Where both explainers point into the lung fields the model is using the right evidence; where
they light up the image border, the shoulders or a text marker, the prediction rests on a
shortcut that will not transfer to other hospitals."""),
    md("## Findings, from this run's numbers"),
    code("""
t, v = tables['test'].set_index('metric'), tables['val'].set_index('metric')
def fmt(table, metric):
    row = table.loc[metric]
    return f"{row['value']:.3f} (95% CI {row['ci_low']:.3f}–{row['ci_high']:.3f})"
fp, fn = int(cm.iloc[0, 1]), int(cm.iloc[1, 0])
Markdown(f\"\"\"
- On the test split ({len(y['test'])} images) the model reached ROC AUC {fmt(t, 'roc_auc')},
  accuracy {fmt(t, 'accuracy')}, sensitivity {fmt(t, 'recall')} and specificity
  {fmt(t, 'specificity')} at the validation threshold {loaded.threshold:.3f}.
- Validation ROC AUC was {fmt(v, 'roc_auc')}; the difference to test
  ({t.loc['roc_auc', 'value'] - v.loc['roc_auc', 'value']:+.3f}) is the price of moving from the
  split the threshold was chosen on to unseen patients.
- It flagged {fp} normal image(s) as pneumonia and missed {fn} pneumonia image(s).
- Brier score on test {fmt(t, 'brier')} (0 is perfect; 0.25 is a coin flip at 50/50).
- Under the acquisition and framing shifts of validation images, specificity ranged
  {stress['specificity'].min():.3f}–{stress['specificity'].max():.3f} (lowest:
  {stress.loc[stress['specificity'].idxmin(), 'shift']}) and sensitivity
  {stress['recall'].min():.3f}–{stress['recall'].max():.3f} (lowest:
  {stress.loc[stress['recall'].idxmin(), 'shift']}) at the same threshold.
{'- **This run used the bundled sample**: these numbers demonstrate the pipeline only.' if cfg.profile == 'sample' else ''}
\"\"\")"""),
    md("""
## Recommendations
- Judge the model on data from other hospitals and devices before trusting any figure here;
  the Kermany images come from one centre, and specificity is what suffers first on new data.
- Keep the threshold chosen on validation; re-choose it (on a validation set from the new site)
  rather than on test results when moving to new data.
- Read the explanations of errors: a pattern of attention outside the lungs calls for masking
  or cropping the lung fields before training.
- **Not for clinical use.**"""),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    print(f"wrote {path}")


NOTEBOOK_CELLS = {"01_obtain": NB01, "02_scrub": NB02, "03_explore": NB03, "04_model": NB04,
                  "05_interpret": NB05}

if __name__ == "__main__":
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, cells in NOTEBOOK_CELLS.items():
        write(name, cells)
