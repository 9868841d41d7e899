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
import multiprocessing.connection
import os
import socket
import time
import warnings

import optuna
from tqdm.auto import tqdm

from src.config import Config
from src.data import Digits
from src.errors import UserError
from src.params import default_params
from src.storage import mask_password, open_storage

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
TAKEN = (*FINISHED, optuna.trial.TrialState.RUNNING)  # trials that count against the cap
POLL_S = 2  # how often a worker looks again while other workers finish the last trials

SPACE = (
    "filters", "kernel_size", "dense_units", "dropout", "batch_norm", "optimizer",
    "learning_rate", "schedule", "batch_size",
    "rotation_range", "zoom_range", "width_shift_range", "height_shift_range",
)  # fmt: skip  # the keys suggest_params draws; the rest (elastic distortion: off) is fixed


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


def default_pruner() -> optuna.pruners.BasePruner:
    """Prune a trial below the median of earlier trials at the same step, after a warm-up."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def open_study(cfg: Config, create: bool, pruner: optuna.pruners.BasePruner | None = None):
    """Load (or create) the study `cfg.study` in `cfg.storage_url`.

    The sampler is seeded with the seed plus the number of trials so far: every trial process
    draws differently, and a rerun of the same search draws the same.
    """
    storage = open_storage(cfg.storage_url)
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
        try:
            study = optuna.create_study(
                study_name=cfg.study, storage=storage, direction="maximize", pruner=pruner
            )
            # Only the worker that created the study gets here: trial 0 scores the hand-tuned
            # defaults (exactly once however many workers start), so the search can only
            # improve on them.
            study.enqueue_trial({k: v for k, v in default_params("cnn").items() if k in SPACE})
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner)
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + len(study.trials))
    return study


def count(study: optuna.Study, states=FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_search(cfg: Config, data: Digits, pruner=None) -> optuna.Study:
    """Run trials until the study holds `cfg.trial_target` finished (complete or pruned) trials.

    Any number of workers (processes, machines) may run this against one study: a worker starts
    a trial only while finished + running trials are below the target, and when the remaining
    slots are other workers' running trials it waits for them, taking a slot over if that trial
    fails or its worker dies. Each trial also checks the cap once it holds its trial number
    (`objective.Objective`), so workers racing for the last slot cannot overshoot.
    """
    target = cfg.trial_target
    study = open_study(cfg, create=True, pruner=pruner)
    done = count(study)
    print(
        f"search: study {cfg.study!r} in {mask_password(cfg.storage_url)}: {done} finished"
        f" trials, {max(0, target - done)} to go (the target {target} is the study's total over"
        " all workers)",
        flush=True,
    )
    from src import objective  # fails here, not in every trial process, if it cannot import

    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited TF state
    me = worker_id(os.getpid())
    children: list[multiprocessing.process.BaseProcess] = []
    start, attempts, stopping, waiting = time.monotonic(), 0, False, False
    with tqdm(total=target, initial=min(done, target), desc="trials", unit="trial") as bar:
        while True:
            for child in [c for c in children if not c.is_alive()]:
                children.remove(child)
                if child.exitcode:
                    tqdm.write(f"search: a trial process exited with code {child.exitcode}")
            now = Tally(study.get_trials(deepcopy=False), me)  # one read of the study per poll
            now.show(bar, target)
            if cfg.timeout and not stopping and time.monotonic() - start > cfg.timeout:
                tqdm.write(f"search: --timeout {cfg.timeout:g} s reached; no new trials")
                stopping = True
            # Children still importing have no trial yet: count them as taking a slot.
            open_slots = target - now.taken - (len(children) - now.mine_running)
            can_start = not stopping and attempts < target - done  # failures use up attempts
            if can_start and open_slots > 0 and len(children) < cfg.n_jobs:
                child = spawn.Process(target=objective.run_trials, args=(cfg, data, pruner, me))
                child.start()
                children.append(child)
                attempts += 1
                continue
            if not children:
                if now.finished >= target or not can_start:
                    break
                if not waiting:  # the last slots are other workers' running trials
                    tqdm.write("search: waiting for the trials other workers are running")
                    waiting = True
                with warnings.catch_warnings():  # "experimental" since Optuna 2.9, like heartbeats
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # a dead worker's trial frees a slot
            if children:  # back as soon as one of them ends
                multiprocessing.connection.wait([c.sentinel for c in children], timeout=POLL_S)
            else:
                time.sleep(POLL_S)
        Tally(study.get_trials(deepcopy=False), me).show(bar, target)
    return study


def worker_id(pid: int) -> str:
    """host:pid of a search process, recorded on each trial it runs."""
    return f"{socket.gethostname()}:{pid}"


class Tally:
    """What a worker needs to know of the study, from one read of its trials."""

    def __init__(self, trials: list[optuna.trial.FrozenTrial], worker: str):
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        self.finished = sum(t.state in FINISHED for t in trials)
        self.taken = self.finished + len(running)  # what counts against the cap
        self.mine_running = sum(t.user_attrs.get("worker") == worker for t in running)
        self.best = max(complete, key=lambda t: t.value, default=None)  # the study maximises

    def show(self, bar: tqdm, target: int) -> None:
        """The bar counts finished trials, every worker's, and shows the best so far; redrawn
        only when either changed (a log file gets a line per redraw)."""
        best = None if self.best is None else (f"{self.best.value:.4f}", self.best.number)
        if (bar.n, getattr(bar, "best", None)) == (min(self.finished, target), best):
            return
        bar.n, bar.best = min(self.finished, target), best
        if best is not None:
            bar.set_postfix(best=best[0], trial=best[1], refresh=False)
        bar.refresh()


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
