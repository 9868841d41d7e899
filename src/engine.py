"""Training engines: what folds, full fits and search trials hand over to get trained models.

A caller describes each model as a `Job` (the training rows, the validation rows or none, a
seed) and asks an engine to train a list of them; the engine calls `on_done` with each model's
`Trained` result as soon as that model is final. Two engines share this interface:

- `sequential` (`src/sequential.py`): one `model.fit` after another. Any Keras backend; the
  default on a CPU, where TensorFlow's `tf.data` path is fastest.
- `batched` (`src/batched.py`): every job of the call trained together as one compiled JAX
  program (weights stacked, one `jax.vmap`ped train step, an epoch as one `lax.scan`, the data
  on the device). Keras on JAX; the default when JAX has a GPU.

Both keep the same semantics: validated jobs early-stop on their validation loss with
`patience` and keep their best epoch; jobs without validation rows train every epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from src.errors import UserError


@dataclass(frozen=True)
class Job:
    """One model to train: its name, rows of train.csv to fit and to validate on, its seed."""

    name: str  # "fold_1", "full_2", "trial": the folder it is saved to
    train_rows: np.ndarray
    val_rows: np.ndarray | None  # None: nothing held out, all epochs run, last weights kept
    seed: int  # weight initialisation, shuffling, augmentation and dropout derive from it


@dataclass
class Trained:
    """A finished job: its model (best weights), history, predictions and timing."""

    job: Job
    model: keras.Model
    history: dict[str, list[float]]  # per epoch: loss, accuracy, [val_loss, val_accuracy,] lr
    val_proba: np.ndarray | None  # probabilities for job.val_rows
    test_proba: np.ndarray | None  # probabilities for every test.csv row (unless not asked)
    seconds: float  # this job's share of the wall time
    extra: dict = field(default_factory=dict)  # engine-specific notes for the run's summary

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


def checkpoint_jobs(path) -> list[str] | None:
    """The names of the jobs an engine's checkpoint at `path` holds (saved as "jobs"), if any."""
    if not path.exists():
        return None
    with np.load(path) as z:
        return [str(name) for name in z["jobs"]]


def backend_has_gpu() -> bool:
    """Whether Keras runs on JAX and JAX sees a GPU: the batched engine's home."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return any(d.platform == "gpu" for d in jax.devices())


def resolve_engine(requested: str) -> str:
    """`--engine auto` -> batched with JAX on a GPU, else sequential; a forced choice checked."""
    if requested == "auto":
        return "batched" if backend_has_gpu() else "sequential"
    if requested == "batched" and keras.backend.backend() != "jax":
        raise UserError(
            f"--engine batched: needs Keras on JAX, this is {keras.backend.backend()};"
            " run with KERAS_BACKEND=jax (pip install -r requirements-gpu.txt on a GPU)"
        )
    return requested


def make_engine(name: str, params: dict, data, **settings):
    """The engine called `name` ("sequential" or "batched"), ready to `train` jobs.

    `settings`: epochs, patience, augment, and optionally verbose and predict_test.
    """
    if resolve_engine(name) == "batched":
        from src.batched import BatchedEngine

        return BatchedEngine(params, data, **settings)
    from src.sequential import SequentialEngine

    return SequentialEngine(params, data, **settings)
