"""Does the search's ranking of its trials predict their cross-validated ranking?

    python -m benchmarks.search_agreement [--trials 8] [--top 5] [--epochs 18] [--folds 5] \
        [--search "--search-folds 1 --search-epochs 10"] [--rows N]

Runs the real search (`run.py --search-only --trials N SEARCH` on the sample's 8,000 training
digits, a new SQLite study), then trains the `--top` finished trials' parameters the way
`benchmarks/cross_validation` trains a recipe: on every split of the sample's 10,000 digits, one
model on the split's training rows for `--epochs` epochs, scored on each digit it never saw.
Prints both scores per trial, the Spearman rank correlation between them, and whether the
search's best trial is also the cross-validated best. Compare SEARCH settings (the search's
defaults are `--search-folds` and `--search-epochs` in run.py) by running this once for each.
Ends with `RESULT search=... spearman=... best_agrees=... search_s=... cv_s=...`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.cross_validation import SAMPLE, all_digits, cross_validate, project_recipe

ROOT = Path(__file__).resolve().parent.parent


def search(tmp: Path, trials: int, flags: str, rows: int | None) -> tuple[list, float]:
    """Run the search as a user does; (its finished trials, best first; wall seconds)."""
    import optuna

    data = SAMPLE
    if rows:  # a smoke run: the first `rows` training rows
        data = tmp / "data"
        data.mkdir()
        pd.read_csv(SAMPLE / "train.csv.gz").iloc[:rows].to_csv(data / "train.csv", index=False)
        pd.read_csv(SAMPLE / "test.csv.gz").iloc[:50].to_csv(data / "test.csv", index=False)
    storage = f"sqlite:///{tmp / 'study.db'}"
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), "--search-only",
           "--trials", str(trials), *shlex.split(flags), "--study-name", "agree",
           "--storage", storage, "--runs-dir", str(tmp / "runs"),
           "--submissions-dir", str(tmp / "subs")]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name="agree", storage=storage)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.value, reverse=True), seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--top", type=int, default=5, help="finished trials to cross-validate")
    p.add_argument("--epochs", type=int, default=18, help="epochs of each cross-validated model")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--search", default="--search-folds 1 --search-epochs 10",
                   help="run.py's search flags under test")  # fmt: skip
    p.add_argument("--rows", type=int, default=None, help="fewer digits (smoke runs)")
    a = p.parse_args()
    print(f"command: python -m benchmarks.search_agreement --trials {a.trials} --top {a.top}"
          f" --epochs {a.epochs} --folds {a.folds} --search {a.search!r}"
          + (f" --rows {a.rows}" if a.rows else ""), flush=True)  # fmt: skip
    from scipy.stats import spearmanr

    from src.quiet import import_keras

    with tempfile.TemporaryDirectory() as tmp:
        trials, search_s = search(Path(tmp), a.trials, a.search, a.rows)
    top = trials[: a.top]
    print(f"search: {len(trials)} finished of {a.trials} in {search_s:.0f} s;"
          f" cross-validating the best {len(top)}", flush=True)  # fmt: skip
    import_keras()
    data = all_digits(a.rows, a.seed)
    flags = f"--folds 0 --full-fits 1 --epochs {a.epochs}"
    recipes = {f"trial_{t.number}": project_recipe(flags, t.user_attrs["params"]) for t in top}
    start = time.perf_counter()
    accuracy, _ = cross_validate(data, recipes, a.folds, 1, a.seed)
    cv_s = time.perf_counter() - start
    print("\n| trial | search objective | cross-validated accuracy |\n| --- | --- | --- |")
    for t in top:
        print(f"| {t.number} | {t.value:.4f} | {accuracy[f'trial_{t.number}']:.4f} |")
    rho = spearmanr([t.value for t in top], [accuracy[f"trial_{t.number}"] for t in top])[0]
    best_cv = max(accuracy, key=accuracy.get)
    agrees = best_cv == f"trial_{top[0].number}"
    print(
        f"RESULT search={a.search.replace(' ', '_')} spearman={rho:.2f} best_agrees={agrees}"
        f" search_s={search_s:.0f} cv_s={cv_s:.0f}"
    )


if __name__ == "__main__":
    main()
