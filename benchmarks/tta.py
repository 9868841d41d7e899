"""Test-time augmentation on a finished run: do shifted, rotated, zoomed copies of test.csv help?

    python -m benchmarks.tta --run default-v1 [--data-dir input/sample]

Loads the run's fold models, predicts the sample's test digits as they are and in 8 fixed
warps (rotation +-5 degrees, zoom +-5 %, shifts of +-1 pixel along x and y, one at a time,
through `src.augment.warp.warp`), and prints the accuracy on solution.csv of each view and of their
averages. Ends with `RESULT plain=... all_views=...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from src.config import ROOT
from src.data import load_digits

VIEWS = {  # uniform draws in [-1, 1] for (angle, x zoom, y zoom, x shift, y shift)
    "plain": None,
    "rotate +5": [0.5, 0, 0, 0, 0], "rotate -5": [-0.5, 0, 0, 0, 0],
    "zoom +5%": [0, 0.5, 0.5, 0, 0], "zoom -5%": [0, -0.5, -0.5, 0, 0],
    "x +1 px": [0, 0, 0, 1, 0], "x -1 px": [0, 0, 0, -1, 0],
    "y +1 px": [0, 0, 0, 0, 1], "y -1 px": [0, 0, 0, 0, -1],
}  # fmt: skip
RANGES = {"rotation_range": 10, "zoom_range": 0.1, "width_shift_range": 1 / 28,
          "height_shift_range": 1 / 28}  # fmt: skip


def main() -> None:
    import keras

    from src.augment.warp import warp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="run folder name under runs/")
    p.add_argument("--data-dir", type=Path, default=ROOT / "input" / "sample")
    a = p.parse_args()
    data = load_digits(a.data_dir)
    x = data.x_test.astype("float32")
    views = {name: x if u is None else np.asarray(
                 warp(x, np.tile(np.float32(u), (len(x), 1)), None, RANGES))
             for name, u in VIEWS.items()}  # fmt: skip
    probas: dict[str, list[np.ndarray]] = {name: [] for name in views}
    for path in sorted((ROOT / "runs" / a.run).glob("fold_*/model.keras")):
        model = keras.models.load_model(path)
        for name, images in views.items():
            probas[name].append(model.predict(images, batch_size=1024, verbose=0))
    mean = {name: np.mean(ps, axis=0) for name, ps in probas.items()}

    def acc(proba):
        return float(np.mean(proba.argmax(1) == data.test_labels))

    print(f"command: python -m benchmarks.tta --run {a.run}")
    for name, proba in mean.items():
        print(f"{name:10s} {acc(proba):.4f}")
    all_views = acc(np.mean(list(mean.values()), axis=0))
    print(f"all views averaged: {all_views:.4f}")
    print(f"RESULT plain={acc(mean['plain']):.4f} all_views={all_views:.4f}")


if __name__ == "__main__":
    main()
