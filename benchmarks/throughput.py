"""Training throughput (images/s) of the default model with each augmentation backend, versus
the same model fitted on in-memory arrays with no augmentation, measured in one process.

    python -m benchmarks.throughput [--epochs 4] [--rows 6400]
    KERAS_BACKEND=jax python -m benchmarks.throughput    # e.g. on a GPU without TensorFlow

On a CPU with TensorFlow the backends are tf.data pipelines (affine, layers) and Keras's
ImageDataGenerator (idg); on a GPU, or another Keras backend, augmentation runs inside the model
(`src.train.device.augment_in_model`) and idg does not apply. `elastic` is the affine backend with
elastic distortion on (elastic_alpha 34, elastic_sigma 4).

Each variant trains a fresh model; the first epoch (tracing, warm-up) is not timed and the
median epoch of the rest is. The baseline is measured first and last; the faster counts.
Ends with `RESULT baseline_img_s=... affine_ratio=... ...`.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from src.config import ROOT
from src.data.load import load_digits
from src.model.cnn import build_model
from src.params import default_params
from src.train.device import BACKEND, augment_in_model, configure_device, reset_keras
from src.train.fit import compile_model, fit_model


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times = getattr(self, "times", []) + [time.perf_counter() - self.start]


VARIANTS = {  # name: (augment backend, parameter overrides)
    "affine": ("affine", {}),
    "elastic": ("affine", {"elastic_alpha": 34.0, "elastic_sigma": 4.0}),
    "layers": ("layers", {}),
    "idg": ("idg", {}),
}


def measure(variant: str, x, y, params, epochs: int) -> float:
    reset_keras()  # keeps the policy configure_device set
    keras.utils.set_random_seed(0)
    model, timer = build_model(params), EpochTimes()
    if variant == "baseline":  # plain model.fit on arrays: Keras's own input pipeline
        compile_model(model, params, int(np.ceil(len(x) / params["batch_size"])), epochs)
        model.fit(x.astype("float32"), y, batch_size=params["batch_size"], epochs=epochs,
                  callbacks=[timer], verbose=0)  # fmt: skip
    else:
        augment, changes = VARIANTS[variant]
        val = (x[:256].astype("float32"), y[:256])
        fit_model(model, {**params, **changes}, (x, y), val, epochs=epochs, patience=epochs,
                  augment=augment, seed=0, callbacks=[timer], verbose=0)  # fmt: skip
    return len(x) / float(np.median(timer.times[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rows", type=int, default=6400)
    a = p.parse_args()
    print(f"device: {configure_device()}")
    data = load_digits(ROOT / "input" / "sample")
    x, y = data.x_train[: a.rows], data.y_train[: a.rows]
    params = default_params("cnn")
    # The baseline runs first and again last; the faster of the two is kept (the first model
    # of a process sometimes trains slower), so the ratios are not flattered by a slow baseline.
    first = measure("baseline", x, y, params, a.epochs)
    skip = {"idg"} if augment_in_model() else set()  # no in-model ImageDataGenerator
    skip |= {"layers"} if BACKEND != "tensorflow" else set()  # refused there: src/train/fit.py
    variants = [v for v in VARIANTS if v not in skip]
    rates = {v: measure(v, x, y, params, a.epochs) for v in variants}
    last = measure("baseline", x, y, params, a.epochs)
    print(f"baseline: {first:.0f} images/s first, {last:.0f} last; the faster is used")
    rates = {"baseline": max(first, last), **rates}
    backend = "" if BACKEND == "tensorflow" else f"KERAS_BACKEND={BACKEND} "
    print(f"command: {backend}python -m benchmarks.throughput --epochs {a.epochs} --rows {a.rows}")
    print("variant    images/s  ratio to baseline")
    for variant, rate in rates.items():
        print(f"{variant:9s} {rate:9.0f}  {rate / rates['baseline']:.3f}")
    ratios = " ".join(
        f"{v}_ratio={r / rates['baseline']:.3f}" for v, r in rates.items() if v != "baseline"
    )
    print(f"RESULT baseline_img_s={rates['baseline']:.0f} {ratios}")


if __name__ == "__main__":
    main()
