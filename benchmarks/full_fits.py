"""Full-data models for several variants: each trained on all sample rows, scored on its test.

    python -m benchmarks.full_fits --out runs/fits a30:1:30: 'b45:1:45:{"elastic_alpha":34.0}'
    python -m benchmarks.full_fits --out runs/fits --summary

A job is NAME:SEED:EPOCHS:JSON (JSON: parameter changes on top of the defaults, may be empty).
Each trains one model on all 8,000 training digits of the bundled sample with the pipeline's own
`fit_model` (no held-out rows: all epochs) and saves its test probabilities as OUT/NAME_sSEED.npy.
`--summary` prints each variant's single-model and averaged accuracy on the sample's 2,000
held-out digits. Several processes can share one GPU (the H100 runs in benchmarks/README.md ran
8 at a time). Ends with `RESULT NAME=accuracy-of-the-average ...`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from src.config import ROOT
from src.data.load import load_digits

SAMPLE = ROOT / "input" / "sample"


def train(out: Path, job: str) -> None:
    import keras

    from src.model.cnn import build_model
    from src.params import default_params
    from src.train.device import reset_keras
    from src.train.fit import fit_model

    name, seed, epochs, changes = job.split(":", 3)
    data = load_digits(SAMPLE)
    params = {**default_params("cnn"), **json.loads(changes or "{}")}
    reset_keras()  # keeps the policy configure_device set
    keras.utils.set_random_seed(int(seed))
    model = build_model(params)
    start = time.perf_counter()
    fit_model(model, params, (data.x_train, data.y_train), None, epochs=int(epochs),
              patience=1, augment="affine", seed=int(seed), verbose=0)  # fmt: skip
    proba = model.predict(data.x_test.astype("float32"), batch_size=1024, verbose=0)
    np.save(out / f"{name}_s{seed}.npy", proba)
    acc = np.mean(proba.argmax(1) == data.test_labels)
    print(f"{name} seed {seed}: test {acc:.4f}  {time.perf_counter() - start:.0f} s", flush=True)


def summary(out: Path) -> None:
    labels = load_digits(SAMPLE).test_labels
    variants: dict[str, list[np.ndarray]] = {}
    for path in sorted(out.glob("*_s*.npy")):
        variants.setdefault(path.stem.rsplit("_s", 1)[0], []).append(np.load(path))
    result = []
    for name, probas in variants.items():
        singles = ", ".join(f"{np.mean(p.argmax(1) == labels):.4f}" for p in probas)
        mean = np.mean(np.mean(probas, axis=0).argmax(1) == labels)
        print(f"{name:8s} {len(probas)} models: {singles}; averaged {mean:.4f}")
        result.append(f"{name}={mean:.4f}")
    print("RESULT " + " ".join(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jobs", nargs="*", help="NAME:SEED:EPOCHS:JSON")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "full-fits")
    p.add_argument("--summary", action="store_true")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    from src.train.device import configure_device

    print(f"device: {configure_device()}", flush=True)
    for job in a.jobs:
        train(a.out, job)
    if a.summary:
        summary(a.out)


if __name__ == "__main__":
    main()
