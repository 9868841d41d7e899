"""The sequential engine: each job is one Keras `model.fit`, one after the other.

Every Keras backend runs it. Each job starts from a clean Keras session seeded with its own
seed, so a job trains the same whether it runs first or is resumed on its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras

from src.model.cnn import build_model
from src.train.device import reset_keras
from src.train.engine import Engine, Job, OnDone, OnEpoch, Trained
from src.train.ensemble import predict_proba
from src.train.fit import fit_model


class _EpochHook(keras.callbacks.Callback):
    """Hands each epoch's logs to the caller's `on_epoch`."""

    def __init__(self, on_epoch: OnEpoch, index: int):
        super().__init__()
        self.on_epoch, self.index = on_epoch, index

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.on_epoch(self.index, epoch, dict(logs or {}))


class SequentialEngine(Engine):
    """Trains jobs one `model.fit` at a time."""

    name = "sequential"

    def __init__(self, params: dict, data, **settings):
        super().__init__(params, data, **settings)
        self.trained = 0

    def describe(self, jobs: list[Job]) -> str:
        n = len(jobs)
        return f"sequential, {n} model{'s' * (n != 1)} one after another{self.note}"

    def summary(self) -> dict:
        return {"name": self.name, "models": self.trained}

    def train(self, jobs: list[Job], on_done: OnDone, on_epoch: OnEpoch | None = None,
              checkpoint: Path | None = None, on_start=None) -> None:  # fmt: skip
        """Fit each job in turn; `on_start(job)` before it, `on_done(result)` after it.

        `checkpoint` is unused: a job is this engine's unit of resumption.
        """
        for index, job in enumerate(jobs):
            if on_start:
                on_start(job)
            on_done(self.train_one(job, index, on_epoch))
            self.trained += 1

    def train_one(self, job: Job, index: int = 0, on_epoch: OnEpoch | None = None) -> Trained:
        x, y = self.data.x_train, self.data.y_train
        reset_keras()  # free the previous job's graph and weights
        keras.utils.set_random_seed(job.seed)  # per job: a resumed job trains identically
        val = None
        if job.val_rows is not None:
            val = (x[job.val_rows].astype("float32"), y[job.val_rows])
        model = build_model(self.params, len(self.data.layout.classes))
        start = time.perf_counter()
        history = fit_model(
            model,
            self.params,
            (x[job.train_rows], y[job.train_rows]),
            val,
            epochs=self.epochs,
            patience=self.patience,
            augment=self.augment,
            seed=job.seed,
            callbacks=[_EpochHook(on_epoch, index)] if on_epoch else None,
            verbose=self.verbose,
        )
        return Trained(
            job=job,
            model=model,
            history={k: [float(v) for v in vs] for k, vs in history.history.items()},
            val_proba=None if val is None else predict_proba(model, val[0]),
            test_proba=predict_proba(model, self.data.x_test) if self.predict_test else None,
            seconds=time.perf_counter() - start,
        )
