"""What every engine is given and gives back: a `Job` per model to train, a `Trained` per
finished model, the callbacks a caller passes, and the `Engine` interface both engines
implement (`engines.py` chooses one and builds it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np


@dataclass(frozen=True)
class Job:
    """One model to train: its kind and number, rows of train.csv to fit and to validate on,
    its seed."""

    kind: str  # "fold", "full" (every row), "pseudo" (every row and pseudo-labels), "trial"
    number: int  # 1-based, within its kind
    train_rows: np.ndarray
    val_rows: np.ndarray | None  # None: nothing held out, all epochs run, last weights kept
    seed: int  # weight initialisation, shuffling, augmentation and dropout derive from it

    @property
    def name(self) -> str:
        """The model's folder in the run, e.g. "fold_1", "full_2"."""
        return f"{self.kind}_{self.number}"


@dataclass
class Trained:
    """A finished job: its model (best weights), history, predictions and timing."""

    job: Job
    model: keras.Model
    history: dict[str, list[float]]  # per epoch: loss, accuracy, [val_loss, val_accuracy,] lr
    val_proba: np.ndarray | None  # probabilities for job.val_rows
    test_proba: np.ndarray | None  # probabilities for every test.csv row (unless not asked)
    seconds: float  # this job's share of the wall time

    @property
    def epochs(self) -> int:
        return len(self.history["loss"])

    @property
    def best_epoch(self) -> int:
        """1-based epoch whose weights were kept (the last one without validation)."""
        if "val_loss" not in self.history:
            return self.epochs
        return int(np.argmin(self.history["val_loss"])) + 1


OnDone = Callable[[Trained], None]
# Called after every epoch of every job: (job index, 0-based epoch, that epoch's logs). It may
# raise (a pruned search trial) to stop the whole call.
OnEpoch = Callable[[int, int, dict], None]


class Engine:
    """What both engines share: the recipe and data they train with, and their interface."""

    name = ""
    note = ""  # why this engine trains where another was the default (the engine line says)

    def __init__(self, params: dict, data, *, epochs: int, patience: int, augment: str,
                 verbose: int = 2, predict_test: bool = True):  # fmt: skip
        self.params, self.data, self.predict_test = params, data, predict_test
        self.epochs, self.patience, self.augment, self.verbose = epochs, patience, augment, verbose

    def train(self, jobs: list[Job], on_done: OnDone, on_epoch: OnEpoch | None = None,
              checkpoint=None, on_start: Callable[[Job], None] | None = None) -> None:  # fmt: skip
        """Train `jobs`; `on_start(job)` as each starts, `on_done(result)` as each is final,
        `on_epoch` after every epoch of every job; resumable from `checkpoint` if the engine
        keeps one."""
        raise NotImplementedError

    def describe(self, jobs: list[Job]) -> str:
        """How `jobs` will train, in a few words, for the run's first lines."""
        raise NotImplementedError

    def summary(self) -> dict:
        """What this engine did, for summary.json."""
        raise NotImplementedError


def checkpoint_jobs(path) -> list[str] | None:
    """The names of the jobs an engine's checkpoint at `path` holds (saved as "jobs"), if any."""
    if not path.exists():
        return None
    with np.load(path) as z:
        return [str(name) for name in z["jobs"]]
