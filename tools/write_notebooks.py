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


NB03 = opening("03 · Explore", "Placeholder.", "from pneumo_helpers import data") + [
    code("clean = pd.read_csv(cfg.path('clean_manifest.csv'))\nprint(len(clean))")]
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
