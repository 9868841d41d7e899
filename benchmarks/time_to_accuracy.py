"""Time to accuracy on the bundled sample: the classic notebook recipe versus this project.

    python -m benchmarks.time_to_accuracy [--preset "--folds 0 --full-fits 1 --epochs 18"]
                                           [--default]

`recipe`: the most copied Digit Recognizer notebook, as published (benchmarks/classic.py),
trained here in this process on the sample's 8,000 digits and scored on its 2,000 test digits.
`preset`: `python run.py --data-dir input/sample --trials 0 PRESET`, as a user runs it; the
default preset is the quick submission: no folds, one model trained on all 8,000 rows for 18
epochs (the recipe trains one model on 7,200 and validates on 800).
`default` (with --default): `python run.py --data-dir input/sample --folds 5 --trials 0`.
Wall times are whole: data loading to test predictions (the run.py ones include TensorFlow's
start-up and writing the submission and report). Goals (issue 5): the preset reaches the
recipe's accuracy in <= 50% of its time; the default 5-fold run beats the recipe's accuracy.
Ends with `RESULT recipe_acc=... recipe_s=... preset_acc=... preset_s=... time_ratio=...`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cross_validation import QUICK

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "input" / "sample"


def recipe() -> tuple[float, float]:
    """Train the classic notebook's CNN as published; (sample test accuracy, wall seconds)."""
    start = time.perf_counter()
    import numpy as np

    from benchmarks.classic import fit_classic
    from src.data.load import load_digits
    from src.train.ensemble import predict_proba

    data = load_digits(SAMPLE)
    model = fit_classic(data.x_train, data.y_train, seed=2)
    proba = predict_proba(model, data.x_test)
    acc = float(np.mean(proba.argmax(axis=1) == data.test_labels))
    return acc, time.perf_counter() - start


def project(flags: str, tmp: Path, name: str) -> tuple[float, float]:
    """Run run.py as a user would; (sample test accuracy, wall seconds of the whole command)."""
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(SAMPLE), "--trials", "0",
           *shlex.split(flags), "--run-name", name, "--runs-dir", str(tmp / "runs"),
           "--submissions-dir", str(tmp / "subs")]  # fmt: skip
    print(f"$ python run.py --data-dir input/sample --trials 0 {flags}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    summary = json.loads((tmp / "runs" / name / "summary.json").read_text())
    return summary["test_accuracy"], seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=QUICK,
                   help="run.py flags of the preset")  # fmt: skip
    p.add_argument("--default", action="store_true", help="also the default 5-fold run (~10 min)")
    args = p.parse_args()
    print(f"command: python -m benchmarks.time_to_accuracy --preset {args.preset!r}"
          + (" --default" if args.default else ""), flush=True)  # fmt: skip
    recipe_acc, recipe_s = recipe()
    print(f"recipe: sample test accuracy {recipe_acc:.4f} in {recipe_s:.0f} s", flush=True)
    result = f"RESULT recipe_acc={recipe_acc:.4f} recipe_s={recipe_s:.0f}"
    with tempfile.TemporaryDirectory() as tmp:
        preset_acc, preset_s = project(args.preset, Path(tmp), "preset")
        ratio = preset_s / recipe_s
        print(f"preset: sample test accuracy {preset_acc:.4f} in {preset_s:.0f} s"
              f" ({ratio:.2f}x the recipe's time)", flush=True)  # fmt: skip
        result += f" preset_acc={preset_acc:.4f} preset_s={preset_s:.0f} time_ratio={ratio:.2f}"
        if args.default:
            default_acc, default_s = project("--folds 5", Path(tmp), "default")
            print(f"default: sample test accuracy {default_acc:.4f} in {default_s:.0f} s")
            result += f" default_acc={default_acc:.4f} default_s={default_s:.0f}"
    print(result)


if __name__ == "__main__":
    main()
