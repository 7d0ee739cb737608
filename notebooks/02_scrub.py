# %% [markdown]
# # 02 · Scrub: validate every image, remove duplicates, split by patient
#
# We decode every file listed in the manifest from 01, set aside the ones that cannot be used (with the reason), find exact duplicates and patients that sit in two splits, and cut a **patient-level, class-stratified** validation split. Nothing on disk is changed; the result is `clean_manifest.csv` plus one table per problem in the run folder.

# %% tags=["parameters"]
# papermill injects these (one per line, so it can read them); see runner.start_notebook
DATA_DIR = None
RUN_DIR = None
PROFILE = None

# %%
from pneumo_helpers.runner import start_notebook

cfg = start_notebook(data_dir=DATA_DIR, run_dir=RUN_DIR, profile=PROFILE)

from IPython.display import display

from pneumo_helpers import dataset, plots, report, scrub

# %%
result = scrub.run(cfg)  # reads manifest.csv, writes the four tables into the run folder
manifest = result.manifest

# %% [markdown]
# ## Files that cannot be used
# Each file is fully decoded (at reduced scale, which still reads every byte), so truncated and
# corrupt JPEGs, zero-byte files and non-images show up here with the reason. RGBA, 16-bit and
# palette images are *not* errors: the loader converts them to 8-bit grayscale.

# %%
# NBVAL_CHECK_OUTPUT
print(f'{len(result.bad)} bad file(s)')
display(result.bad) if len(result.bad) else None

# %%
# NBVAL_CHECK_OUTPUT
print('Colour modes of the files:', report.count_words(manifest['mode']))

# %% [markdown]
# ## Duplicates and leakage
# Identical bytes under two names would let a model be validated on an image it trained on. We
# keep one copy (the test copy when one exists) and drop patients of the training pool who also
# appear in the test split.

# %%
# NBVAL_CHECK_OUTPUT
n_groups = result.duplicates['sha256'].nunique()
print(f'{len(result.duplicates)} files in {n_groups} groups of identical images')
print('Where the copies lie:', report.count_words(result.duplicates['kind']) or 'none')
print(f'{len(result.leaks)} patient(s) in more than one original split')
print('Files dropped:', report.count_words(result.dropped['reason']) or 'none')

# %% [markdown]
# ## The new split
# Kaggle's own validation split, where the dataset has one (16 images in the published set), is
# folded into training: far too small to choose anything. Validation is cut from that pool by
# patient with scikit-learn's `StratifiedGroupKFold` (seeded), so every image of a child lands in
# one split and the class ratio is kept. Where a dataset has no test split, one is then cut the
# same way from the rest: its patients are never validation patients, the ones that chose
# recipes, models and thresholds (here, in `pneumo train` and in the sweep), so it stays untouched.

# %%
# NBVAL_CHECK_OUTPUT
display(result.before_after())

# %%
# NBVAL_CHECK_OUTPUT
clean = result.clean
per_split = clean.groupby('split').agg(images=('path', 'size'), patients=('patient', 'nunique'))
display(per_split.loc[[s for s in dataset.SPLITS if s in per_split.index]].rename_axis(None))
assert scrub.patients_in_several_splits(clean).empty, 'a patient sits in two splits'
print('Checked: no patient appears in two splits.')

# %%
plots.class_counts(dataset.count_table(clean), title='Clean images per split and class', path=cfg.layout.figure('02_clean_counts'));

# %% [markdown]
# ## What this tells us
# - The bad-file, duplicate and leakage tables above are the complete list of what was left out,
#   and why; the files themselves are untouched.
# - Validation now has enough images of both classes to compare models and choose a threshold;
#   the class imbalance is the same in every split, so validation metrics are comparable to
#   training ones.
