"""Does the search's ranking of its trials predict their cross-validated ranking?

    python -m benchmarks.search_agreement [--trials 8] [--epochs 18] [--folds 5] \
        [--search "--search-folds 2 --search-epochs 10"] [--rows N]

Runs the real search (`run.py`'s `run_search`, a new SQLite study on the sample's 8,000 training
digits) with SEARCH's flags and no pruner, so every trial finishes and every objective ranks the
same trials. Each trial keeps its folds' best validation accuracy and lowest validation loss, so
one search with F search folds scores several objectives at once: the mean over the first f
folds (f = 1..F) of the accuracy (the search's own objective) or of the loss. Then every trial's
parameters are trained the way `benchmarks/cross_validation` trains a recipe: on every split of
the sample's 10,000 digits, one model on the split's training rows for `--epochs` epochs, scored
on each digit it never saw.

Prints a table (each objective's score per trial beside its cross-validated accuracy) and per
objective the Spearman rank correlation with the cross-validated ranking, whether its best trial
is the cross-validated best, and the cross-validated accuracy of the trial it picks (`picked`),
against the best one's (`best`). The search's seconds are split over its folds, so an objective
on f folds costs about f / F of them. Ends with one `RESULT objective=...` line per objective.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.cross_validation import SAMPLE, all_digits, cross_validate, project_recipe


def search(tmp: Path, trials: int, flags: str, rows: int | None):
    """The search as run.py runs it, without pruning; (its finished trials, config, seconds)."""
    import optuna

    from src.train.quiet import import_keras

    import_keras()  # TensorFlow's start-up log filtered, as run.py does
    from src.cli import parse_args
    from src.data.load import load_digits
    from src.search import worker as searching
    from src.train.device import configure_device
    from src.train.engines import resolve_engine

    cfg = parse_args(["--data-dir", str(SAMPLE), "--search-only", "--trials", str(trials),
                      *shlex.split(flags), "--study-name", "agree",
                      "--storage", f"sqlite:///{tmp / 'study.db'}", "--runs-dir",
                      str(tmp / "runs"), "--submissions-dir", str(tmp / "subs")])  # fmt: skip
    precision, _ = configure_device(cfg.precision)
    cfg = replace(cfg, engine=resolve_engine(cfg.engine), precision=precision)
    data = load_digits(SAMPLE)
    if rows:  # a smoke run: the first `rows` training rows
        data = replace(data, x_train=data.x_train[:rows], y_train=data.y_train[:rows])
    start = time.perf_counter()
    study = searching.run_search(cfg, data, pruner=optuna.pruners.NopPruner())
    seconds = time.perf_counter() - start
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return done, cfg, seconds


def objectives(trials, search_folds: int) -> dict[str, list[float]]:
    """{objective: its score per trial, higher is better} for every objective one search with
    `search_folds` folds can score."""
    scores = {}
    for f in range(1, search_folds + 1):
        folds = f"{f}_fold" + ("s" if f > 1 else "")
        scores[f"{folds}_accuracy"] = [np.mean(t.user_attrs["fold_accuracy"][:f]) for t in trials]
        scores[f"{folds}_loss"] = [-np.mean(t.user_attrs["fold_loss"][:f]) for t in trials]
    return scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8, help="trials of the search, all scored")
    p.add_argument("--epochs", type=int, default=18, help="epochs of each cross-validated model")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--search",
        default="--search-folds 2 --search-epochs 10",
        help="run.py's search flags (objectives on 1..F search folds are scored)",
    )
    p.add_argument("--rows", type=int, default=None, help="fewer digits (smoke runs)")
    a = p.parse_args()
    print(f"command: python -m benchmarks.search_agreement --trials {a.trials} --epochs {a.epochs}"
          f" --folds {a.folds} --seed {a.seed} --search {a.search!r}"
          + (f" --rows {a.rows}" if a.rows else ""), flush=True)  # fmt: skip
    from scipy.stats import spearmanr

    with tempfile.TemporaryDirectory() as tmp:
        trials, cfg, search_s = search(Path(tmp), a.trials, a.search, a.rows)
    print(f"search: {len(trials)} trials finished of {a.trials} in {search_s:.0f} s"
          f" ({cfg.search_folds} folds x {cfg.search_epochs} epochs); cross-validating all",
          flush=True)  # fmt: skip
    data = all_digits(a.rows, a.seed)
    flags = f"--folds 0 --full-fits 1 --epochs {a.epochs}"
    recipes = {f"trial_{t.number}": project_recipe(flags, t.user_attrs["params"]) for t in trials}
    start = time.perf_counter()
    accuracy, _ = cross_validate(data, recipes, a.folds, 1, a.seed)
    cv_s = time.perf_counter() - start
    truth = [accuracy[f"trial_{t.number}"] for t in trials]
    scored = objectives(trials, cfg.search_folds)

    print("\n| trial | " + " | ".join(scored) + " | cross-validated accuracy |")
    print("| --- " * (len(scored) + 2) + "|")
    for i, t in enumerate(trials):
        values = " | ".join(f"{abs(v[i]):.4f}" for v in scored.values())  # losses positive
        print(f"| {t.number} | {values} | {truth[i]:.4f} |")
    best = max(truth)
    print(f"\ncross-validation: {a.folds} folds over {len(data.y_train)} digits,"
          f" {a.epochs} epochs a model, {cv_s:.0f} s; best trial {max(truth):.4f},"
          f" worst {min(truth):.4f}")  # fmt: skip
    for name, values in scored.items():
        rho = spearmanr(values, truth)[0]
        picked = truth[int(np.argmax(values))]
        folds = int(name.split("_", 1)[0])
        cost = search_s * folds / cfg.search_folds
        print(f"RESULT objective={name} epochs={cfg.search_epochs} spearman={rho:.2f}"
              f" best_agrees={picked == best} picked={picked:.4f} best={best:.4f}"
              f" search_s={cost:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
