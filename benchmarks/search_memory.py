"""Memory per Optuna trial: RSS growth of the search process over N tiny trials.

    python -m benchmarks.search_memory [--trials 10] [--rows 1000]

Two ways, one process, per-process first so the other's leak cannot pollute it:
- `per_process`: what run.py does (`worker.run_search`, one spawned process per trial).
- `in_process`: every trial in this process, as optuna-examples do, each after clear_session()
  and gc; TensorFlow keeps each traced model's functions, so RSS grows per trial.
The figure is the growth from the end of trial 2 to the end of trial N.
Ends with `RESULT per_process_growth_mb=... in_process_growth_mb=... in_process_per_trial_mb=...`.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import optuna
import psutil

from src.config import ROOT, Config
from src.data.load import load_digits
from src.search import study as studies
from src.search import trial, worker

RSS = psutil.Process().memory_info


def mb() -> float:
    return RSS().rss / 2**20


def per_process(cfg: Config, data) -> float:
    worker.run_search(replace(cfg, trials=2), data, optuna.pruners.NopPruner())
    after_two = mb()
    worker.run_search(cfg, data, optuna.pruners.NopPruner())
    print(f"per_process: RSS after trial 2 {after_two:.1f} MB, after trial {cfg.trials}"
          f" {mb():.1f} MB", flush=True)  # fmt: skip
    return mb() - after_two


def in_process(cfg: Config, data) -> float:
    rss = []
    study = studies.open_study(cfg, create=True, pruner=optuna.pruners.NopPruner())
    study.optimize(
        trial.Objective(cfg, data),
        n_trials=cfg.trials,
        callbacks=[lambda study, trial: rss.append(mb())],
    )
    print("in_process: RSS after each trial " + " ".join(f"{r:.0f}" for r in rss), flush=True)
    return rss[-1] - rss[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--rows", type=int, default=1000, help="training rows of the sample to use")
    a = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_digits(ROOT / "input" / "sample")
    data.x_train, data.y_train = data.x_train[: a.rows], data.y_train[: a.rows]
    with tempfile.TemporaryDirectory() as tmp:
        base = Config(folds=2, search_epochs=2, trials=a.trials, runs_dir=Path(tmp),
                      storage=f"sqlite:///{tmp}/memory.db")  # fmt: skip
        separate = per_process(replace(base, study_name="per-process"), data)
        shared = in_process(replace(base, study_name="in-process"), data)
    print(f"command: python -m benchmarks.search_memory --trials {a.trials} --rows {a.rows}")
    print(
        f"RESULT per_process_growth_mb={separate:.1f} in_process_growth_mb={shared:.1f}"
        f" in_process_per_trial_mb={shared / (a.trials - 2):.1f}"
    )


if __name__ == "__main__":
    main()
