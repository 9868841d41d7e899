"""Accuracy sweep: full `run.py` k-fold runs of several variants, side by side, on the sample.

    python -m benchmarks.sweep --parallel 2 --out runs/sweep \
        "base=" "elastic=--set elastic_alpha=34" "long=--epochs 50"

Each variant is `NAME=RUN.PY FLAGS`, run as `python run.py --data-dir input/sample --trials 0
--folds 5 FLAGS` (the real pipeline, own run folder, log in OUT/NAME.log), up to `--parallel`
at a time (on a GPU several small runs share the card). Prints per variant the out-of-fold
accuracy on the 8,000 training digits (the number to choose by) and the accuracy on the
sample's 2,000 held-out test digits, then the same for the average of all variants'
probabilities. Ends with `RESULT name_oof=... name_test=... ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "input" / "sample"


def run_variant(name: str, flags: str, out: Path, folds: int) -> dict:
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(SAMPLE), "--trials", "0",
           "--folds", str(folds), *shlex.split(flags), "--run-name", name,
           "--runs-dir", str(out / "runs"), "--submissions-dir", str(out / "subs")]  # fmt: skip
    # Several runs share one GPU: allocate its memory as needed, not all of it up front.
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "TF_FORCE_GPU_ALLOW_GROWTH": "true", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    start = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code:
        print(f"{name}: run.py exited {code}, see {out / f'{name}.log'}", flush=True)
        return {"name": name, "flags": flags, "failed": code}
    summary = json.loads((out / "runs" / name / "summary.json").read_text())
    row = {"name": name, "flags": flags, "oof": summary["oof_accuracy"],
           "test": summary["test_accuracy"], "seconds": seconds}  # fmt: skip
    print(f"{name}: OOF {row['oof']:.4f}  test {row['test']:.4f}  {seconds:.0f} s  [{flags}]",
          flush=True)  # fmt: skip
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="NAME=RUN.PY FLAGS")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "sweep")
    a = p.parse_args()
    variants = [v.split("=", 1) for v in a.variants]
    a.out.mkdir(parents=True, exist_ok=True)
    print("command: python -m benchmarks.sweep " + shlex.join(sys.argv[1:]), flush=True)
    with ThreadPoolExecutor(a.parallel) as pool:
        rows = list(pool.map(lambda v: run_variant(*v, a.out, a.folds), variants))
    done = [r for r in rows if "failed" not in r]
    if not done:
        sys.exit("no variant finished")
    probas = {}
    for r in done:
        with np.load(a.out / "runs" / r["name"] / "ensemble.npz") as z:
            probas[r["name"]] = (z["oof_proba"], z["test_proba"])
            labels = z["y_train"]  # the same rows in every run
    answers = _solution()
    oof = np.mean([o for o, _ in probas.values()], axis=0)
    test = np.mean([t for _, t in probas.values()], axis=0)
    all_oof, all_test = np.mean(oof.argmax(1) == labels), np.mean(test.argmax(1) == answers)
    print(f"\nvariant          OOF     test    seconds  ({len(labels)} OOF, {len(answers)} test)")
    for r in sorted(done, key=lambda r: -r["oof"]):
        print(f"{r['name']:14s} {r['oof']:.4f}  {r['test']:.4f}  {r['seconds']:7.0f}")
    print(f"{'all averaged':14s} {all_oof:.4f}  {all_test:.4f}")
    result = " ".join(f"{r['name']}_oof={r['oof']:.4f} {r['name']}_test={r['test']:.4f}"
                      for r in done)  # fmt: skip
    print(f"RESULT {result} all_oof={all_oof:.4f} all_test={all_test:.4f}")


def _solution() -> np.ndarray:
    import pandas as pd

    return pd.read_csv(SAMPLE / "solution.csv")["Label"].to_numpy()


if __name__ == "__main__":
    main()
