"""The chest-film gate: what it rejects of real films, and what it catches of non-films.

    python benchmarks/bench_gate.py [--data ../shared/data] [--out benchmarks/results/gate.json]

Every image goes through ``read_gray(path, size=112, film=True)``, exactly what ``pneumo
predict`` does with the shipped model before it gives a label, so decoding, EXIF orientation
and the gate are measured together:

- real films rejected: the external half (``chest_xray_external/test``) and the training films
  (``chest_xray/train``, the films the gate's statistics come from); target at most 0.5 %;
- non-films caught: a generated set (:func:`non_films`) of noise, text, photos, patterns and
  films made unusable (inverted, turned 90/180/270 degrees, flipped upside down, 1-bit, two
  grey levels), the films taken from the external half; target at least 95 %.

Writes the shares, per kind, and the names of the real films rejected.
"""

import argparse
import json
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pneumo_helpers.images import ImageError, read_gray  # noqa: E402
from pneumo_helpers.image_files import collect_images  # noqa: E402

SIZE = 112  # the shipped model's input
WORDS = "the quick brown fox jumps over a lazy dog patient report chest film 2024".split()


def _text(rng, side=600):
    img = Image.new("L", (side, side), 255 if rng.random() < 0.7 else 0)
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=int(rng.integers(12, 40)))
    ink = 255 - img.getpixel((0, 0))
    for y in range(10, side, int(rng.integers(20, 50))):
        draw.text((10, y), " ".join(rng.choice(WORDS, 8)), fill=ink, font=font)
    return img


def _patterns(rng, side=512):
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    cell = int(rng.choice([4, 8, 16, 32, 64, 128]))
    angle = rng.uniform(0, np.pi)
    r = np.hypot(yy - side / 2, xx - side / 2)
    return {
        "checkerboard": ((yy // cell + xx // cell) % 2) * 255,
        "stripes": (np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / cell * np.pi) > 0) * 255,
        "gradient": (np.cos(angle) * xx + np.sin(angle) * yy) % side / side * 255,
        "rings": (np.sin(r / cell * np.pi) * 0.5 + 0.5) * 255,
        "sinusoid": (np.sin(xx / cell) * np.cos(yy / (cell * 1.7)) * 0.5 + 0.5) * 255,
    }


def _photos():
    from sklearn.datasets import load_sample_images  # two real photos shipped with sklearn

    return [np.asarray(p) for p in load_sample_images().images]


def non_films(films, rng):
    """(kind, PIL image) pairs that are not usable chest films; ``films`` are uint8 arrays."""
    out = []
    for _ in range(20):
        out += [("noise", Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8))),
                ("noise", Image.fromarray(np.clip(rng.normal(128, 50, (400, 560)), 0, 255)
                                          .astype(np.uint8))),
                ("text", _text(rng))]
        out += [(f"pattern:{k}", Image.fromarray(v.astype(np.uint8)))
                for k, v in _patterns(rng).items()]
    for photo in _photos():
        for _ in range(15):
            h, w = photo.shape[:2]
            top, left = rng.integers(0, h // 3), rng.integers(0, w // 3)
            crop = photo[top:top + h // 2 + int(rng.integers(0, h // 3)),
                         left:left + w // 2 + int(rng.integers(0, w // 3))]
            out += [("photo:colour", Image.fromarray(crop)),
                    ("photo:grey", Image.fromarray(crop).convert("L"))]
    for film in films:
        img = Image.fromarray(film)
        out += [("film:inverted", Image.fromarray(255 - film)),
                ("film:rotated90", img.transpose(Image.Transpose.ROTATE_90)),
                ("film:rotated270", img.transpose(Image.Transpose.ROTATE_270)),
                ("film:upside-down", img.transpose(Image.Transpose.ROTATE_180)),
                ("film:flipped-vertically", img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
                ("film:1-bit", img.convert("1")),
                ("film:two-grey", Image.fromarray(np.where(film > np.median(film), 200, 40)
                                                  .astype(np.uint8)))]
    return out


def rejected(paths):
    """{path: reason} of the files the gate (or decoding) refuses."""
    def one(path):
        try:
            read_gray(path, size=SIZE, film=True)
        except ImageError as exc:
            return path, exc.reason
        return path, None
    with ThreadPoolExecutor(2) as pool:
        return {p: r for p, r in pool.map(one, paths) if r}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--films", type=int, default=60, help="external films made unusable")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gate.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    result = {}
    for name, folder in [("external_test", args.data / "chest_xray_external" / "test"),
                         ("train", args.data / "chest_xray" / "train")]:
        paths = collect_images([folder])
        bad = rejected(paths)
        result[name] = dict(films=len(paths), rejected=len(bad), share=len(bad) / len(paths),
                            examples={Path(p).name: r for p, r in list(bad.items())[:20]})
        print(f"{name}: {len(bad)} of {len(paths)} real films rejected ({len(bad) / len(paths):.2%})")
    external = collect_images([args.data / "chest_xray_external" / "test"])
    picks = rng.choice(len(external), args.films, replace=False)
    films = [read_gray(external[i], size=512) for i in picks]
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {}
        for i, (kind, img) in enumerate(non_films(films, rng)):
            path = Path(tmp) / f"{i:04d}.{'jpeg' if kind == 'photo:colour' else 'png'}"
            img.save(path)
            kinds[str(path)] = kind
        caught = rejected(list(kinds))
    totals, hits = Counter(kinds.values()), Counter(kinds[p] for p in caught)
    result["non_films"] = dict(
        images=len(kinds), caught=len(caught), share=len(caught) / len(kinds),
        by_kind={k: dict(images=n, caught=hits[k], share=hits[k] / n) for k, n in totals.items()},
        reasons=dict(Counter(r.split(" (")[0] for r in caught.values()).most_common()))
    print(f"non-films: {len(caught)} of {len(kinds)} caught ({len(caught) / len(kinds):.2%})")
    for kind, row in result["non_films"]["by_kind"].items():
        print(f"  {kind}: {row['caught']}/{row['images']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
