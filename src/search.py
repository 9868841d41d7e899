"""Optuna hyperparameter search whose best trial feeds the final k-fold ensemble.

The search space is `suggest_params(trial)`, a dict that `build_model` and `fit_model` take
unchanged, so the ensemble is built with exactly what the search scored. A trial trains on K-1
folds and validates on one (`search_folds` of them, each cheaper than the final training:
`search_epochs` epochs), reporting validation accuracy per epoch to the pruner.

Studies live in an Optuna RDB storage (SQLite in runs/ by default, any SQLAlchemy URL works), so
a stopped search resumes where it stopped and several processes can share one study. Each trial
runs in a fresh process (`src/objective.py` says why).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings

import optuna
from tqdm.auto import tqdm

from src.config import Config
from src.data import Digits
from src.errors import UserError
from src.params import AUGMENT_DEFAULTS, default_params

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
HEARTBEAT_S = 10  # a trial whose process died is marked failed after GRACE_S without a beat
GRACE_S = 30


SPACE = (
    "filters", "kernel_size", "dense_units", "dropout", "batch_norm", "optimizer",
    "learning_rate", "schedule", "batch_size", *AUGMENT_DEFAULTS,
)  # fmt: skip  # the keys suggest_params draws; the rest of the dict is fixed


def suggest_params(trial: optuna.Trial) -> dict:
    """The search space: architecture, optimiser, schedule, batch size, augmentation."""
    params = default_params("cnn")
    params.update(
        filters=trial.suggest_categorical("filters", [16, 24, 32, 48]),
        kernel_size=trial.suggest_categorical("kernel_size", [3, 5]),
        dense_units=trial.suggest_categorical("dense_units", [0, 128, 256]),
        dropout=trial.suggest_float("dropout", 0.1, 0.5),
        batch_norm=trial.suggest_categorical("batch_norm", [True, False]),
        optimizer=trial.suggest_categorical("optimizer", ["adam", "rmsprop", "sgd"]),
        learning_rate=trial.suggest_float("learning_rate", 3e-4, 3e-2, log=True),
        schedule=trial.suggest_categorical("schedule", ["cosine", "plateau"]),
        batch_size=trial.suggest_categorical("batch_size", [32, 64, 128]),
        rotation_range=trial.suggest_float("rotation_range", 0.0, 20.0),
        zoom_range=trial.suggest_float("zoom_range", 0.0, 0.2),
        width_shift_range=trial.suggest_float("width_shift_range", 0.0, 0.2),
        height_shift_range=trial.suggest_float("height_shift_range", 0.0, 0.2),
    )
    return params


def mask_password(url: str) -> str:
    """A storage URL safe to print: the password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: print nothing secret-looking
        return url.split("@")[-1] if "@" in url else url


def default_pruner() -> optuna.pruners.BasePruner:
    """Prune a trial below the median of earlier trials at the same step, after a warm-up."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def open_study(cfg: Config, create: bool, pruner: optuna.pruners.BasePruner | None = None):
    """Load (or create) the study `cfg.study` in `cfg.storage_url`.

    The sampler is seeded with the seed plus the number of trials so far: every trial process
    draws differently, and a rerun of the same search draws the same.
    """
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                cfg.storage_url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as e:  # bad URL, missing driver, unreachable server
        reason = (
            str(e).splitlines()[0][:200].replace(cfg.storage_url, mask_password(cfg.storage_url))
        )
        raise UserError(
            f"--storage {mask_password(cfg.storage_url)}: cannot open ({reason});"
            " pass an SQLAlchemy URL such as sqlite:///runs/optuna.db"
        ) from None
    pruner = pruner or default_pruner()
    if not create:
        try:
            study = optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise UserError(
                f"--study-name {cfg.study!r}: no such study in {mask_password(cfg.storage_url)}"
                f" (it has: {', '.join(names) or 'none'}); search first with --trials N"
            ) from None
    else:
        study = optuna.create_study(
            study_name=cfg.study,
            storage=storage,
            direction="maximize",
            pruner=pruner,
            load_if_exists=True,
        )
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + len(study.trials))
    return study


def count(study: optuna.Study, states=FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_search(cfg: Config, data: Digits, pruner=None) -> optuna.Study:
    """Run trials until the study holds `cfg.trials` finished (complete or pruned) trials."""
    study = open_study(cfg, create=True, pruner=pruner)
    if not study.trials:
        # Trial 0 scores the hand-tuned defaults: the search can only improve on them.
        study.enqueue_trial({k: v for k, v in default_params("cnn").items() if k in SPACE})
    done = count(study)
    todo = max(0, cfg.trials - done)
    print(
        f"search: study {cfg.study!r} in {mask_password(cfg.storage_url)}: {done} finished"
        f" trials, {todo} to go (--trials is the study's total)",
        flush=True,
    )
    from src import objective  # fails here, not in every trial process, if it cannot import

    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited TF state
    start = time.monotonic()
    with tqdm(total=todo, desc="trials", unit="trial") as bar:
        for _ in range(todo):  # failed trials use up attempts too: a broken space cannot loop
            if count(study) >= cfg.trials:  # other workers on the same study got there first
                break
            child = spawn.Process(
                target=objective.run_trials, args=(cfg, data, pruner, os.getpid())
            )
            child.start()
            child.join()
            if child.exitcode:
                print(f"search: a trial process exited with code {child.exitcode}", flush=True)
            bar.update(1)
            if count(study, (optuna.trial.TrialState.COMPLETE,)):
                bar.set_postfix(best=f"{study.best_value:.4f}", trial=study.best_trial.number)
            if cfg.timeout and time.monotonic() - start > cfg.timeout:
                print(f"search: --timeout {cfg.timeout:g} s reached", flush=True)
                break
    return study


def best_params(study: optuna.Study) -> dict:
    """The full parameter dict of the study's best completed trial."""
    try:
        trial = study.best_trial
    except ValueError:
        raise UserError(
            f"study {study.study_name!r} has no completed trial yet; run more --trials"
        ) from None
    return dict(trial.user_attrs["params"])


def study_summary(study: optuna.Study, seconds: float) -> dict:
    """Counts by state, best value and params, wall time of this process's search."""
    states = optuna.trial.TrialState
    summary = {
        "study": study.study_name,
        "complete": count(study, (states.COMPLETE,)),
        "pruned": count(study, (states.PRUNED,)),
        "failed": count(study, (states.FAIL,)),
        "seconds": seconds,
    }
    if summary["complete"]:
        summary.update(best_value=study.best_value, best_trial=study.best_trial.number)
    return summary


def print_study_summary(summary: dict, params: dict | None) -> None:
    print("\n══ search ══")
    print(
        f"study {summary['study']!r}: {summary['complete']} complete, {summary['pruned']} pruned,"
        f" {summary['failed']} failed; search wall time {summary['seconds']:.0f} s"
    )
    if "best_value" in summary:
        print(f"best trial #{summary['best_trial']}: val accuracy {summary['best_value']:.4f}")
        print("best params: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
