"""The fit stall: seconds `model.fit` spends after training ends, with tf.data autotuning on/off.

    python -m benchmarks.fit_stall [--processes 3] [--fits 2] [--epochs 8]

Each process trains `--fits` default models (5,333 sample digits, the `affine` pipeline) and
times the gap from the last callback (`on_train_end`) to the return of `model.fit`: the
destruction of the training iterator. `autotune` runs the pipeline with tf.data's autotuning on
(what the project did before), `current` with `src.model.augment.pipeline_options()`. Fresh processes,
because the stall showed in the first fits of a process. Ends with `RESULT autotune_stalls=...
autotune_max_s=... current_stalls=... current_max_s=...` (a stall: a gap over 1 s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
import keras, tensorflow as tf
from src.model.augment import tfdata as augment
from src.config import ROOT
from src.data.load import load_digits
from src.model.cnn import build_model
from src.params import default_params
from src.train.fit import fit_model

if {autotune}:
    augment.pipeline_options = tf.data.Options  # defaults: autotuning on

class End(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.at = time.perf_counter()

data = load_digits(ROOT / "input" / "sample")
x, y = data.x_train[:5333], data.y_train[:5333]
val = (data.x_train[5333:].astype("float32"), data.y_train[5333:])
gaps = []
for i in range({fits}):
    keras.backend.clear_session()
    keras.utils.set_random_seed(i)
    params, end = default_params("cnn"), End()
    fit_model(build_model(params), params, (x, y), val, epochs={epochs}, patience=99,
              augment="affine", seed=i, callbacks=[end], verbose=0)
    gaps.append(time.perf_counter() - end.at)
print(json.dumps(gaps))
"""


def gaps(autotune: bool, args) -> list[float]:
    found = []
    for _ in range(args.processes):
        code = CHILD.format(autotune=autotune, fits=args.fits, epochs=args.epochs)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT, check=True).stdout  # fmt: skip
        found += json.loads(out.strip().splitlines()[-1])
        print(f"{'autotune' if autotune else 'current'}: gaps so far"
              f" {[round(g, 1) for g in found]} s", flush=True)  # fmt: skip
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--fits", type=int, default=2)
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    print(f"command: python -m benchmarks.fit_stall --processes {args.processes} --fits"
          f" {args.fits} --epochs {args.epochs}")  # fmt: skip
    result = {}
    for name, autotune in (("autotune", True), ("current", False)):
        found = gaps(autotune, args)
        result[f"{name}_stalls"] = f"{sum(g > 1 for g in found)}/{len(found)}"
        result[f"{name}_max_s"] = f"{max(found):.1f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
