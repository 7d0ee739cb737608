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
            "from IPython.display import display\n\n"
            "from pneumo_helpers import RunConfig, plots\n"
            f"{imports}\n\n"
            "cfg = RunConfig.from_params(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)\n"
            "print(f'profile={cfg.profile}  image_size={cfg.image_size}  epochs={cfg.epochs}  "
            "seed={cfg.seed}')\n"
            "print(f'run folder: {cfg.run_dir}')"),
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
manifest = data.build_manifest(where.path)
manifest.to_csv(cfg.path('manifest.csv'), index=False)
print(f'{len(manifest)} files, {manifest["patient"].nunique()} patients, '
      f'{manifest.shape[1]} columns: {", ".join(manifest.columns)}')""", check=True),
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
                    seed=cfg.seed)
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
Pneumonia images are brighter on average (opacities are dense): a real signal, but also one that
exposure settings mimic. That is why the models standardise each image's contrast and why
training augments brightness and contrast — so the model has to look at *where* the opacity is."""),
    code("plots.mean_images(pixels, train['label'], path=cfg.path('figures', '03_mean_images.png'));"),
    md("""
The difference image shows where the classes differ on average: the lung fields (pneumonia
brighter), not the image borders — reassuring, though it says nothing about single images."""),
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
NB04 = opening("04 · Model", "Placeholder.", "") + [code("print('todo')")]
NB05 = opening("05 · Interpret", "Placeholder.", "") + [code("print('todo')")]


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
