"""The Optuna study: its search space, opening it in a storage, and reading it back.

`suggest_params(trial)` is a dict that `build_model` and the engines take unchanged, so the
ensemble is built with exactly what the search scored. Studies live in an Optuna RDB storage
(`storage.py`: SQLite in runs/ by default, any SQLAlchemy URL), so a stopped search resumes where
it stopped and several processes or machines can share one study.
"""

from __future__ import annotations

import socket

import optuna
import sqlalchemy

from src import UserError
from src.config import Config
from src.outputs.files import mask_secrets
from src.params import PARAMS, SEARCHED, default_params
from src.search.storage import open_storage

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
TAKEN = (*FINISHED, optuna.trial.TrialState.RUNNING)  # trials that count against the cap


def draw_params(trial: optuna.Trial, seed: int, fixed: dict | None = None) -> dict:
    """`suggest_params` with the study's sampler seeded by this trial's number.

    Trial numbers are unique in a study, so two processes that opened it at the same moment
    (and would share a seed drawn from the trial count) still draw differently, and a rerun of
    a one-process search draws the same.
    """
    trial.study.sampler = optuna.samplers.TPESampler(seed=seed + trial.number)
    return suggest_params(trial, fixed)


def suggest_params(trial: optuna.Trial, fixed: dict | None = None) -> dict:
    """The search space: the table's searched rows (src/params.py) drawn, the rest default;
    `fixed` (the run's `--set` values) holds its keys where it says, and those are not drawn."""
    fixed = fixed or {}
    params = default_params("cnn")
    for key in SEARCHED:
        if key in fixed:
            continue
        kind, *args = PARAMS[key].search
        if kind == "choice":
            params[key] = trial.suggest_categorical(key, list(args[0]))
        else:
            params[key] = trial.suggest_float(key, *args, log=kind == "log")
    return {**params, **fixed}


def default_pruner() -> optuna.pruners.BasePruner:
    """Prune a trial below the median of earlier trials at the same step, after a warm-up."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def open_study(cfg: Config, create: bool, pruner: optuna.pruners.BasePruner | None = None):
    """Load (or create) the study `cfg.study` in `cfg.storage_url` (its sampler is reseeded for
    each trial: `draw_params`)."""
    storage = open_storage(cfg.storage_url)
    pruner = pruner or default_pruner()
    if not create:
        try:
            study = optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise UserError(
                f"--study-name {cfg.study!r}: no such study in {mask_secrets(cfg.storage_url)}"
                f" (it has: {', '.join(names) or 'none'}); search first with --trials N"
            ) from None
    else:
        try:
            study = optuna.create_study(
                study_name=cfg.study, storage=storage, direction="maximize", pruner=pruner
            )
            # Only the worker that created the study gets here: trial 0 scores the hand-tuned
            # defaults (exactly once however many workers start), so the search can only
            # improve on them.
            study.enqueue_trial({k: v for k, v in default_params("cnn").items() if k in SEARCHED})
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            reason = str(e.__cause__ or e.__context__ or e).splitlines()[0][:200]
            raise UserError(
                f"--storage {mask_secrets(cfg.storage_url)}: cannot write there ({reason}); the"
                " search records its trials in it: give a writable storage"
            ) from None
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed)  # reseeded per trial: draw_params
    return study


def count(study: optuna.Study, states=FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def best_params(study: optuna.Study) -> dict:
    """The full parameter dict of the study's best completed trial."""
    try:
        trial = study.best_trial
    except ValueError:
        raise UserError(
            f"study {study.study_name!r} has no completed trial yet; run more --trials"
        ) from None
    params = trial.user_attrs["params"]
    # a study from before a hyperparameter was added: that one at its default
    return {**default_params(params["model"]), **params}


def study_summary(study: optuna.Study, seconds: float) -> dict:
    """Counts by state, best value and params, wall time of this process's search."""
    states = optuna.trial.TrialState
    summary = {
        "study": study.study_name,
        "complete": count(study, (states.COMPLETE,)),
        "pruned": count(study, (states.PRUNED,)),
        "failed": sum(
            not t.user_attrs.get("surplus") for t in study.get_trials(states=(states.FAIL,))
        ),
        "surplus": sum(bool(t.user_attrs.get("surplus")) for t in study.trials),
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
        + (f"; {summary['surplus']} surplus (started past the cap, not run)"
           if summary["surplus"] else "")
    )  # fmt: skip
    if "best_value" in summary:
        print(f"best trial #{summary['best_trial']}: val accuracy {summary['best_value']:.4f}")
        print("best params: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))


def worker_id(pid: int) -> str:
    """host:pid of a search process, recorded on each trial it runs."""
    return f"{socket.gethostname()}:{pid}"
