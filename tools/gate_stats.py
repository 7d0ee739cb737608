"""Write ``pneumo_helpers/gate_stats.npz``: what the chest-film gate compares against.

    python tools/gate_stats.py --train ../shared/data/chest_xray/train [--components 24]

From the training films only: the mean standardised thumbnail, its principal components and
the standardised mean film; then each threshold at a quantile of the training films' own
values, so that each check rejects about ``--share`` of them (the external films are never
read here; benchmarks/bench_gate.py measures the result on them).
"""

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pneumo_helpers import gate, images  # noqa: E402
from pneumo_helpers.image_files import collect_images  # noqa: E402

MODEL_SIZE = 112  # the shipped model's input: films are decoded at the scale pneumo uses


def decoded(paths):
    """(gray, chroma) of every file, decoded as ``pneumo predict`` decodes it."""
    def one(path):
        path = Path(path)
        return images._decode(path, images._read(path), MODEL_SIZE, True)
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, paths))


def fit(films, *, components: int, share: float) -> gate.GateStats:
    """GateStats of ``films`` [(gray, chroma)], thresholds at the ``share`` quantiles."""
    z = np.stack([gate.thumbnail(g).ravel() for g, _ in films])
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    template = mean.reshape(gate.THUMB, gate.THUMB)
    template = (template - template.mean()) / template.std()
    provisional = gate.GateStats(mean=mean, components=vt[:components], template=template,
                                 max_chroma=0, max_top2=0, min_correlation=0, max_residual=0,
                                 min_upright_margin=0)
    f = {k: np.array([d[k] for d in (gate.features(g, c, provisional) for g, c in films)])
         for k in ("chroma", "top2", "correlation", "residual", "upright_margin")}
    low, high = share, 1.0 - share
    return gate.GateStats(
        mean=mean, components=vt[:components], template=template,
        # Films stored as RGB spread by JPEG chroma noise only: twice their largest spread.
        max_chroma=max(2.0 * float(f["chroma"].max()), 8.0),
        max_top2=float(np.quantile(f["top2"], high)),
        min_correlation=float(np.quantile(f["correlation"], low)),
        max_residual=float(np.quantile(f["residual"], high)),
        min_upright_margin=float(np.quantile(f["upright_margin"], low)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--components", type=int, default=24)
    parser.add_argument("--share", type=float, default=0.0005)
    parser.add_argument("--out", type=Path, default=gate.STATS_FILE)
    args = parser.parse_args()
    films = decoded(collect_images([args.train]))
    stats = fit(films, components=args.components, share=args.share)
    stats.save(args.out)
    print(f"{len(films)} training films -> {args.out}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in stats.__dict__.items() if isinstance(v, float)))


if __name__ == "__main__":
    main()
