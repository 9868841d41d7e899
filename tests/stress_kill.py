"""SIGKILL a deterministic run at random moments, over and over, and check what survives.

    python -m tests.stress_kill [--kills 10] [--rows 800] [--seed 0]

A reference run (2 folds + 2 full fits, 3 epochs, `--deterministic`) is timed first. Then the
same command, under another run name, is killed with SIGKILL after a random delay within the
reference's wall time and rerun, again and again until it finishes; then another run, until
`--kills` kills have landed.
Checked: its submission is byte-identical to the reference's; no temporary file is left; a
previous `submission.csv` is intact after every kill; a model finished before a kill is never
trained again. Each kill's stage (which models were complete) is printed. Ends with
`RESULT kills=... runs=... identical=... temporary_files=... previous_intact=... retrained=...`.
tests/test_resume.py kills at three chosen stages in CI.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from src.config import ROOT

FLAGS = ["--folds", "2", "--epochs", "3", "--full-fits", "2", "--trials", "0", "--deterministic"]


def command(data: Path, out: Path, name: str, seed: int) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), *FLAGS, "--seed",
            str(seed), "--run-name", name, "--runs-dir", str(out / "runs"),
            "--submissions-dir", str(out / "subs")]  # fmt: skip


def finished_models(run: Path) -> dict[str, int]:
    """Each complete model's folder and its model.keras's modification time."""
    return {p.parent.name: p.stat().st_mtime_ns for p in run.glob("*/model.keras")
            if (p.parent / "predictions.npz").exists()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--rows", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    print(f"command: python -m tests.stress_kill --kills {a.kills} --rows {a.rows}"
          f" --seed {a.seed}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out, data = Path(tmp), Path(tmp) / "data"
        data.mkdir()
        sample = ROOT / "input" / "sample"
        pd.read_csv(sample / "train.csv.gz").iloc[: a.rows].to_csv(data / "train.csv", index=False)
        pd.read_csv(sample / "test.csv.gz").iloc[:200].to_csv(data / "test.csv", index=False)
        start = time.perf_counter()
        subprocess.run(command(data, out, "reference", 11), check=True, capture_output=True)
        wall = time.perf_counter() - start
        expected = (out / "subs" / "reference.csv").read_bytes()
        previous = out / "subs" / "submission.csv"
        before = previous.read_bytes()  # the reference's, now the "previous submission"
        intact, retrained, kills, identical, runs = True, 0, 0, True, 0
        print(f"reference: {wall:.0f} s", flush=True)
        while kills < a.kills:  # each round: a new run, killed until it gets to finish
            runs += 1
            name = f"killed-{runs}"
            run = out / "runs" / name
            while True:
                done = finished_models(run)
                quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
                proc = subprocess.Popen(command(data, out, name, 11), **quiet)
                delay = rng.uniform(0, wall)
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    now = finished_models(run)
                    stage = ", ".join(sorted(now)) or "no model complete"
                    print(f"kill {kills} ({name}) after {delay:.1f} s: {stage}", flush=True)
                    intact &= previous.read_bytes() == before
                    retrained += sum(now.get(n) != m for n, m in done.items())
                    continue
                if proc.returncode != 0:
                    sys.exit(f"{name} failed with exit code {proc.returncode}")
                retrained += sum(finished_models(run).get(n) != m for n, m in done.items())
                identical &= (out / "subs" / f"{name}.csv").read_bytes() == expected
                break
        temporary = sum(".tmp" in path.name for path in out.rglob("*"))
    print(f"RESULT kills={kills} runs={runs} identical={identical} temporary_files={temporary}"
          f" previous_intact={intact} retrained={retrained}")  # fmt: skip


if __name__ == "__main__":
    main()
