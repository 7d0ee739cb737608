"""Build the bundled sample (pneumo_helpers/sample_data/chest_xray) from the real training split.

Run once by a maintainer; the output is committed. Patients are drawn at random (seed 0) per
class and never shared between the sample's splits; images are downscaled to 128x128 grayscale
JPEGs so the whole sample stays under 5 MB while keeping the Kaggle layout and class imbalance.

    python tools/make_sample.py ../shared/data/chest_xray/train
"""

import argparse
import random
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image

from pneumo_helpers.files import sha256
from pneumo_helpers.labels import CLASSES, patient_id

# Images per (split, class): train keeps the 26/74 imbalance of Kaggle's train, val mirrors
# Kaggle's 8/8 and test Kaggle's 38/62.
TARGET = {"train": {"NORMAL": 104, "PNEUMONIA": 296},
          "val": {"NORMAL": 8, "PNEUMONIA": 8},
          "test": {"NORMAL": 36, "PNEUMONIA": 60}}
SIZE = 128
OUT = Path(__file__).resolve().parents[1] / "pneumo_helpers" / "sample_data" / "chest_xray"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_dir", type=Path)
    args = parser.parse_args()
    rng = random.Random(0)
    if OUT.exists():
        shutil.rmtree(OUT)
    for label in CLASSES:
        by_patient = defaultdict(list)
        for path in sorted((args.train_dir / label).glob("*.jpeg")):
            by_patient[patient_id(path.name)].append(path)
        patients = sorted(by_patient)
        rng.shuffle(patients)
        for split in ("test", "val", "train"):
            want, taken = TARGET[split][label], 0
            while taken < want:
                files = by_patient[patients.pop()][: want - taken]
                dest = OUT / split / label
                dest.mkdir(parents=True, exist_ok=True)
                for path in files:
                    img = Image.open(path).convert("L").resize((SIZE, SIZE), Image.LANCZOS)
                    img.save(dest / path.name, quality=85, optimize=True)
                taken += len(files)
    # The checksum list 01 verifies: a moved (relabelled) or altered sample file stops the run.
    sums = OUT.parent / "chest_xray.sha256"
    sums.write_text("".join(f"{sha256(p)}  {p.relative_to(OUT.parent).as_posix()}\n"
                            for p in sorted(OUT.rglob("*.jpeg"))))
    total = sum(p.stat().st_size for p in OUT.rglob("*.jpeg"))
    print(f"wrote {sum(1 for _ in OUT.rglob('*.jpeg'))} images, {total / 1e6:.2f} MB to {OUT}")


if __name__ == "__main__":
    main()
