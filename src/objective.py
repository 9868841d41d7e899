"""What one search trial runs, in its own process: train, report, prune, free everything.

`run_trials` is the entry point of the trial processes `search.run_search` starts. TensorFlow
keeps every traced training function alive for the life of the process (about 28 MB per model
here, `clear_session()` notwithstanding; tensorflow/tensorflow#61791), so a long search run in one
process would grow without bound: each trial gets a fresh process and hands all of it back.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
from dataclasses import dataclass

import keras
import numpy as np
import optuna

from src.config import Config
from src.cv import make_folds
from src.data import Digits
from src.model import build_model
from src.search import FINISHED, TAKEN, count, open_study, suggest_params, worker_id
from src.train import configure_device, fit_model


class PruneOnPlateau(keras.callbacks.Callback):
    """Report val_accuracy to Optuna each epoch and stop the trial when the pruner says so.

    Hand-written rather than optuna_integration's KerasPruningCallback because a trial spans
    several folds: steps continue across them (`offset`), so Optuna never sees a step twice.
    """

    def __init__(self, trial: optuna.Trial, offset: int):
        super().__init__()
        self.trial, self.offset = trial, offset

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.trial.report(float(logs["val_accuracy"]), self.offset + epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {self.offset + epoch}")


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
        keras.backend.clear_session()  # each trial starts from a clean Keras session
        keras.utils.set_random_seed(self.cfg.seed + trial.number)
        params = suggest_params(trial)
        trial.set_user_attr("params", params)  # the full dict, fixed values included
        folds = make_folds(self.data.y_train, self.cfg.folds, self.cfg.seed)
        x, y = self.data.x_train, self.data.y_train
        scores = []
        try:
            for fold in range(min(self.cfg.search_folds, self.cfg.folds)):
                train, val = folds != fold, folds == fold
                model = build_model(params)
                history = fit_model(
                    model,
                    params,
                    (x[train], y[train]),
                    (x[val].astype("float32"), y[val]),
                    epochs=self.cfg.search_epochs,
                    patience=self.cfg.patience,
                    augment=self.cfg.augment,
                    seed=self.cfg.seed + fold,
                    callbacks=[PruneOnPlateau(trial, fold * self.cfg.search_epochs)],
                    verbose=0,
                )
                scores.append(max(history.history["val_accuracy"]))
                del model, history
        finally:
            keras.backend.clear_session()  # free this trial's models before the next
            gc.collect()
        return float(np.mean(scores))

    def check_cap(self, trial: optuna.Trial) -> None:
        """Fail this trial before any work if the trials numbered before it fill the cap.

        Trial numbers are handed out under a lock on the study's row, so every trial numbered
        below this one is already visible: two workers racing for the last slot cannot both win.
        """
        ahead = [t for t in trial.study.get_trials(deepcopy=False, states=TAKEN)
                 if t.number < trial.number]  # fmt: skip
        if len(ahead) >= self.cfg.trial_target:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(
                f"trial {trial.number} not run: {len(ahead)} trials before it already fill the"
                f" study's cap of {self.cfg.trial_target}"
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
    configure_device()
    study = open_study(cfg, create=False, pruner=pruner)
    if count(study, TAKEN) >= cfg.trial_target:  # other workers took the slot meanwhile
        return
    study.optimize(
        Objective(cfg, data, worker),
        n_trials=n_trials,
        callbacks=[optuna.study.MaxTrialsCallback(cfg.trial_target, states=FINISHED)],
        catch=(Exception,),  # a failing config (e.g. out of memory) is recorded, not fatal
    )
