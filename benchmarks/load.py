"""Load + validate a Kaggle-size train.csv and test.csv: wall time and peak RSS vs plain pandas.

    python -m benchmarks.load [--repeats 3]

Builds Kaggle's sizes from the bundled sample's real rows (train.csv: 42,000 rows x 785
columns, test.csv: 28,000 x 784, plain CSV as Kaggle ships them), then times, each in a fresh
process so peak RSS is the call's own (interpreter and pandas included, the same in both):
- `baseline`: `pandas.read_csv(path)`, nothing else;
- `project`: `src.data.load.load_train` / `load_test`: read, validate every cell, return uint8
  images.
Median of `--repeats` alternating runs. Goals (issue 5): train.csv in <= 2 s, peak RSS
<= 1.5x the baseline's. Ends with `RESULT train_s=... train_baseline_s=... train_rss_ratio=...
test_s=... test_rss_ratio=...`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "input" / "sample"
ROWS = {"train": 42_000, "test": 28_000}

CHILD = """
import json, resource, sys, time
from pathlib import Path
import pandas as pd
from src.data import load as data
kind, what, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
start = time.perf_counter()
if what == "baseline":
    pd.read_csv(folder / f"{{kind}}.csv")
elif kind == "train":
    data.load_train(folder)
else:
    data.load_test(folder)
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb}}))
"""


def build(folder: Path) -> None:
    """Kaggle-size CSVs from the sample's real rows, repeated in order."""
    for kind, rows in ROWS.items():
        frame = pd.read_csv(SAMPLE / f"{kind}.csv.gz")
        frame = frame.iloc[np.arange(rows) % len(frame)]
        frame.to_csv(folder / f"{kind}.csv", index=False)
        size = (folder / f"{kind}.csv").stat().st_size / 2**20
        print(f"{kind}.csv: {len(frame):,} rows x {frame.shape[1]} columns, {size:.1f} MB")


def measure(kind: str, what: str, folder: Path) -> dict:
    code = CHILD.format()
    out = subprocess.run([sys.executable, "-c", code, kind, what, str(folder)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"command: python -m benchmarks.load --repeats {args.repeats}")
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder)
        for kind in ROWS:
            runs = {"baseline": [], "project": []}
            for _ in range(args.repeats):
                for what in runs:  # alternate, so drifts in machine load hit both
                    runs[what].append(measure(kind, what, folder))
            med = {w: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_mb")}
                   for w, rs in runs.items()}  # fmt: skip
            ratio = med["project"]["peak_mb"] / med["baseline"]["peak_mb"]
            print(f"{kind}.csv: pandas.read_csv {med['baseline']['seconds']:.2f} s, peak"
                  f" {med['baseline']['peak_mb']:.0f} MB; load_{kind} (read + validate)"
                  f" {med['project']['seconds']:.2f} s, peak {med['project']['peak_mb']:.0f} MB"
                  f" ({ratio:.2f}x)")  # fmt: skip
            result.update({
                f"{kind}_s": med["project"]["seconds"],
                f"{kind}_baseline_s": med["baseline"]["seconds"],
                f"{kind}_peak_mb": med["project"]["peak_mb"],
                f"{kind}_baseline_peak_mb": med["baseline"]["peak_mb"],
                f"{kind}_rss_ratio": ratio,
            })  # fmt: skip
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
