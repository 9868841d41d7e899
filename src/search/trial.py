"""What one search trial runs, in its own process: train, report, prune, free everything.

`run_trials` is the entry point of the trial processes `worker.run_search` starts. TensorFlow
keeps every traced training function alive for the life of the process (megabytes per model,
`clear_session()` notwithstanding; tensorflow/tensorflow#61791), so a long search run in one
process would grow without bound: each trial gets a fresh process and hands all of it back.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
from dataclasses import dataclass

import numpy as np
import optuna

from src.config import Config
from src.data.load import Digits
from src.search.study import FINISHED, TAKEN, count, draw_params, open_study, worker_id
from src.train.device import configure_device, reset_keras
from src.train.engines import keep_compiled_programs, make_engine
from src.train.folds import fold_jobs


def pruning_hook(trial: optuna.Trial, epochs: int):
    """An engine's `on_epoch`: report val_accuracy to Optuna, stop the trial when it says so.

    A trial spans several folds: steps continue across them (fold j's epoch e is step
    j * epochs + e), so Optuna never sees a step twice.
    """

    def on_epoch(job: int, epoch: int, logs: dict) -> None:
        step = job * epochs + epoch
        trial.report(float(logs["val_accuracy"]), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    return on_epoch


class SurplusTrial(Exception):
    """This trial was created after the study's cap was taken by other workers' trials."""


@dataclass
class Objective:
    """Mean validation accuracy of a trial's parameters over the first `search_folds` folds.

    Holds the data, loaded and validated once per process, not once per trial.
    """

    cfg: Config
    data: Digits
    worker: str = ""  # host:pid of the search process, recorded on every trial it runs

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", self.worker or worker_id(os.getpid()))
        self.check_cap(trial)
        params = draw_params(trial, self.cfg.seed, dict(self.cfg.overrides))
        trial.set_user_attr("params", params)  # the full dict, fixed values included
        cfg = self.cfg
        jobs = fold_jobs(self.data.y_train, cfg.folds, cfg.seed, first=cfg.search_folds)
        engine = make_engine(cfg.engine, params, self.data, epochs=cfg.search_epochs,
                             patience=cfg.patience, augment=cfg.augment, verbose=0,
                             predict_test=False)  # fmt: skip
        scores, losses = [], []

        def record(trained) -> None:
            scores.append(max(trained.history["val_accuracy"]))
            losses.append(min(trained.history["val_loss"]))

        try:
            engine.train(jobs, record, on_epoch=pruning_hook(trial, cfg.search_epochs))
        finally:
            reset_keras()  # free this trial's models before the next
            gc.collect()
        # Per fold, for benchmarks/search_agreement to rank trials by other objectives.
        trial.set_user_attr("fold_accuracy", [float(s) for s in scores])
        trial.set_user_attr("fold_loss", [float(v) for v in losses])
        return float(np.mean(scores))

    def check_cap(self, trial: optuna.Trial) -> None:
        """Fail this trial before any work if the trials numbered before it fill the cap.

        Trial numbers are handed out under a lock on the study's row, so every trial numbered
        below this one is already visible: two workers racing for the last slot cannot both win.
        """
        ahead = [t for t in trial.study.get_trials(deepcopy=False, states=TAKEN)
                 if t.number < trial.number]  # fmt: skip
        if len(ahead) >= self.cfg.trials:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(
                f"trial {trial.number} not run: {len(ahead)} trials before it already fill the"
                f" study's cap of {self.cfg.trials}"
            )


def _die_with_parent(parent: int) -> None:
    """Linux: end this process when the search process dies (e.g. kill -9), no orphan trials."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the trial then finishes on its own
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def run_trials(
    cfg: Config, data: Digits, pruner=None, worker: str = "", n_trials: int = 1
) -> None:
    """Run `n_trials` trials of the study against its shared storage (a trial process's body).

    `worker` is the host:pid of the search process that started this one, to die with it;
    "" when called in-process.
    """
    if worker:
        _die_with_parent(int(worker.rsplit(":", 1)[1]))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search process shows progress
    keep_compiled_programs(cfg.runs_dir)  # trials of the same program compile it once
    configure_device(cfg.precision)  # run.py resolved it
    study = open_study(cfg, create=False, pruner=pruner)
    if count(study, TAKEN) >= cfg.trials:  # other workers took the slot meanwhile
        return
    study.optimize(
        Objective(cfg, data, worker),
        n_trials=n_trials,
        callbacks=[optuna.study.MaxTrialsCallback(cfg.trials, states=FINISHED)],
        catch=(Exception,),  # a failing config (e.g. out of memory) is recorded, not fatal
    )
