"""Optuna hyperparameter search whose best trial feeds the final k-fold ensemble.

The search space is `suggest_params(trial)`, a dict that `build_model` and `fit_model` take
unchanged, so the ensemble is built with exactly what the search scored. A trial trains on K-1
folds and validates on one (`search_folds` of them, each cheaper than the final training:
`search_epochs` epochs), reporting validation accuracy per epoch to the pruner.

Studies live in an Optuna RDB storage (SQLite in runs/ by default, any SQLAlchemy URL works), so
a stopped search resumes where it stopped and several processes can share one study.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import keras
import numpy as np
import optuna

from src.config import Config
from src.cv import make_folds
from src.data import Digits
from src.errors import UserError
from src.model import build_model
from src.params import AUGMENT_DEFAULTS, default_params
from src.train import fit_model

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
HEARTBEAT_S = 10  # a trial whose process died is marked failed after GRACE_S without a beat
GRACE_S = 30


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
    assert set(AUGMENT_DEFAULTS) <= set(params)
    return params


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


@dataclass
class Objective:
    """Mean validation accuracy of a trial's parameters over the first `search_folds` folds.

    Holds the data, loaded and validated once per process, not once per trial.
    """

    cfg: Config
    data: Digits

    def __call__(self, trial: optuna.Trial) -> float:
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


def mask_password(url: str) -> str:
    """A storage URL safe to print: the password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: print nothing secret-looking
        return url.split("@")[-1] if "@" in url else url


def open_study(cfg: Config, create: bool, pruner: optuna.pruners.BasePruner | None = None):
    """Load (or create) the study `cfg.study` in `cfg.storage_url`."""
    try:
        storage = optuna.storages.RDBStorage(
            cfg.storage_url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            failed_trial_callback=None,
        )
    except Exception as e:  # bad URL, missing driver, unreachable server
        reason = (
            str(e).splitlines()[0][:200].replace(cfg.storage_url, mask_password(cfg.storage_url))
        )
        raise UserError(
            f"--storage {mask_password(cfg.storage_url)}: cannot open ({reason});"
            " pass an SQLAlchemy URL such as sqlite:///runs/optuna.db"
        ) from None
    if not create:
        try:
            return optuna.load_study(study_name=cfg.study, storage=storage, pruner=pruner)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise UserError(
                f"--study-name {cfg.study!r}: no such study in {mask_password(cfg.storage_url)}"
                f" (it has: {', '.join(names) or 'none'}); search first with --trials N"
            ) from None
    return optuna.create_study(
        study_name=cfg.study,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        load_if_exists=True,
    )


def count(study: optuna.Study, states=FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_search(cfg: Config, data: Digits, pruner=None) -> optuna.Study:
    """Run trials until the study holds `cfg.trials` finished (complete or pruned) trials."""
    study = open_study(cfg, create=True, pruner=pruner)
    done = count(study)
    todo = max(0, cfg.trials - done)
    print(
        f"search: study {cfg.study!r} in {mask_password(cfg.storage_url)}: {done} finished"
        f" trials, {todo} to go (--trials is the study's total)",
        flush=True,
    )
    if todo:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says it all
        study.optimize(
            Objective(cfg, data),
            n_trials=todo,
            timeout=cfg.timeout,
            callbacks=[optuna.study.MaxTrialsCallback(cfg.trials, states=FINISHED)],
            catch=(Exception,),  # a failing config (e.g. out of memory) is recorded, not fatal
            gc_after_trial=True,
            show_progress_bar=True,
        )
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
