"""The batched engine: every job of a call trained together as one compiled JAX program.

A small CNN leaves a GPU nearly idle when it is trained one `model.fit` at a time: each step
is a few milliseconds of kernel launches. Here the K models of a run (its folds and full fits)
are one program instead: their weights stacked along a leading axis, one train step `vmap`ped
over it, an epoch one `lax.scan`, the data on the device. That device side is
src/train/batched_program.py; this module is the host's side, the epoch loop and its bookkeeping.

The sequential engine's semantics hold per model: its own initialisation, shuffling, dropout
and `RandomWarp` draws (all from the job's seed); `ceil(rows / batch)` steps an epoch (the
last batch topped up with rows from the start of the epoch's order, so every batch is full);
the warm-up + cosine schedule on its own step count, or the plateau schedule on its own
metric (decided here, per model); early stopping on its own validation loss with the same
patience, the best epoch's weights kept; each model handed over (predictions, then `on_done`)
as soon as it is final.

After the first epoch, and then every `CHECKPOINT_S` seconds, the whole state (weights,
optimiser, best weights, counters, histories) is written to a checkpoint, so a killed run
resumes from its last checkpointed epoch and ends with the same models as an uninterrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from src import UserError
from src.outputs.files import atomic_path
from src.train.batched_program import CONV, BatchedProgram
from src.train.engine import Engine, Job, OnDone, OnEpoch, Trained
from src.train.optimizer import PLATEAU

# A checkpoint after the first epoch (so a resumed program always holds the same models), then
# at most this often: on a GPU an epoch of a Kaggle-size run takes about a second and a
# checkpoint of 8 models tens of megabytes.
CHECKPOINT_S = 30.0


class BatchedEngine(Engine):
    """Trains a list of jobs as one vmapped JAX program (`program`, built by `train`)."""

    name = "batched"

    def __init__(self, params: dict, data, **settings):
        super().__init__(params, data, **settings)
        # The program's settings (benchmarks/engines.py varies them; see BatchedProgram).
        self.unroll, self.conv, self.tail = 1, CONV, True

    def describe(self, jobs: list[Job]) -> str:
        return f"batched, {len(jobs)} model{'s' * (len(jobs) != 1)} in one program"

    def summary(self) -> dict:
        """Models; this process's seconds building them (`setup_s`), in epochs (the first,
        compile included; the median of the others; all) and handing them over (predictions
        and saving, `handover_s`)."""
        seconds = getattr(self, "epoch_seconds", [])
        return {
            "name": self.name,
            "models": len(getattr(self, "jobs", [])),
            "first_epoch_s": seconds[0] if seconds else None,
            "median_epoch_s": float(np.median(seconds[1:])) if len(seconds) > 1 else None,
            "setup_s": getattr(self, "setup_s", None),
            "epochs_s": float(np.sum(seconds)),
            "handover_s": getattr(self, "handover_s", 0.0),
        }

    def train(self, jobs: list[Job], on_done: OnDone, on_epoch: OnEpoch | None = None,
              checkpoint: Path | None = None, on_start=None) -> None:  # fmt: skip
        """Train every job together; `on_done` gets each one as soon as it is final.

        With `checkpoint`, the state is saved there (see CHECKPOINT_S) and a run killed midway
        continues from it (same jobs, same settings: the caller checks the run folder).
        """
        start = time.perf_counter()
        self.program = BatchedProgram(self.params, self.data, jobs, augment=self.augment,
                                      epochs=self.epochs, conv=self.conv, tail=self.tail,
                                      unroll=self.unroll)  # fmt: skip
        self.jobs, self.n_val = jobs, self.program.n_val
        self.setup_s, self.handover_s = time.perf_counter() - start, 0.0
        k, v = len(jobs), self.n_val
        host = {
            "epoch": 0,
            "active": np.ones(k, bool),
            "best_loss": np.full(v, np.inf, np.float32),
            "wait": np.zeros(k, np.int64),
            "lr": np.full(k, self.params["learning_rate"], np.float32),  # plateau schedule
            "plateau_best": np.full(k, -np.inf),
            "plateau_wait": np.zeros(k, np.int64),
            "reported": np.zeros(k, bool),  # handed to on_done
            "history": [dict() for _ in jobs],
            "seconds": 0.0,
        }
        if checkpoint is not None and checkpoint.exists():
            host = self._load_checkpoint(checkpoint, host)
            print(f"batched: resumed at epoch {host['epoch'] + 1} from {checkpoint.name}",
                  flush=True)  # fmt: skip
            for i in np.flatnonzero(~host["active"] & ~host["reported"]):
                self._finish(i, host, on_done)  # stopped before the kill, not yet saved
        if on_start:
            for job in jobs:
                on_start(job)
        self.epoch_seconds = []  # this process's epochs: the first includes the compile
        saved: list[float] = []  # when this process wrote checkpoints
        while host["epoch"] < self.epochs and host["active"].any():
            epoch = host["epoch"]
            tick = time.perf_counter()
            metrics = self.program.run_epoch(epoch, host["active"], host["lr"], host["best_loss"])
            seconds = time.perf_counter() - tick
            self.epoch_seconds.append(seconds)
            finished = self._after_epoch(epoch, metrics, host, on_epoch)
            host["epoch"] = epoch + 1
            host["seconds"] += seconds
            if host["epoch"] == self.epochs:
                finished |= host["active"]
                host["active"][:] = False
            self._print_epoch(epoch, metrics, host, seconds)
            due = not saved or time.perf_counter() - saved[-1] >= CHECKPOINT_S
            if checkpoint is not None and host["active"].any() and due:
                self._save_checkpoint(checkpoint, host)
                saved.append(time.perf_counter())
            for i in np.flatnonzero(finished):
                self._finish(i, host, on_done)
        for i in np.flatnonzero(~host["reported"]):  # e.g. resumed after the last epoch
            self._finish(i, host, on_done)
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        self.wall_s = time.perf_counter() - start

    def _after_epoch(self, epoch: int, m: dict, host: dict, on_epoch) -> np.ndarray:
        """Histories, early stopping and the plateau schedule; which models finished now."""
        active = host["active"]
        finished = np.zeros(len(self.jobs), bool)
        for i in np.flatnonzero(active):
            logs = {"loss": float(m["loss"][i]), "accuracy": float(m["accuracy"][i])}
            if i < self.n_val:
                logs.update(val_loss=float(m["val_loss"][i]),
                            val_accuracy=float(m["val_accuracy"][i]))  # fmt: skip
            logs["learning_rate"] = float(m["learning_rate"][i])
            for key, value in logs.items():
                host["history"][i].setdefault(key, []).append(value)
            if on_epoch:
                on_epoch(i, epoch, logs)
            if i < self.n_val:  # Keras's EarlyStopping(val_loss, patience, restore best)
                host["wait"][i] += 1
                if m["improved"][i]:
                    host["best_loss"][i] = m["val_loss"][i]
                    host["wait"][i] = 0
                elif host["wait"][i] >= self.patience and epoch > 0:
                    finished[i] = True
            if self.params["schedule"] == "plateau":  # Keras's ReduceLROnPlateau, per model
                current = logs["val_accuracy" if i < self.n_val else "accuracy"]
                if current - PLATEAU["min_delta"] > host["plateau_best"][i]:
                    host["plateau_best"][i], host["plateau_wait"][i] = current, 0
                else:
                    host["plateau_wait"][i] += 1
                    if host["plateau_wait"][i] >= PLATEAU["patience"]:
                        if host["lr"][i] > np.float32(PLATEAU["min_lr"]):
                            host["lr"][i] = max(host["lr"][i] * PLATEAU["factor"],
                                                PLATEAU["min_lr"])  # fmt: skip
                        host["plateau_wait"][i] = 0
        active &= ~finished
        return finished

    def _print_epoch(self, epoch: int, m: dict, host: dict, seconds: float) -> None:
        if not self.verbose:
            return
        parts = []
        if self.n_val:
            scores = " ".join(f"{a:.4f}" for a in m["val_accuracy"])
            parts.append(f"val_accuracy {scores}")
        parts.append(f"loss {np.mean(m['loss']):.4f}")
        running = int(host["active"].sum())
        print(f"epoch {epoch + 1}/{self.epochs}  {'  '.join(parts)}  ({running} of"
              f" {len(self.jobs)} training)  {seconds:.1f} s", flush=True)  # fmt: skip

    def _finish(self, i: int, host: dict, on_done: OnDone) -> None:
        """Hand model i over: best weights (validated) or last (not), predictions, history."""
        job, program = self.jobs[i], self.program
        tv, ntv = program.weights(i, best=i < self.n_val)
        tick = time.perf_counter()
        val_proba = None
        if job.val_rows is not None:
            val_proba = program.predict(tv, ntv, self.data.x_train[job.val_rows])
        test_proba = program.predict(tv, ntv, self.data.x_test) if self.predict_test else None
        model = program.load_into_model(tv, ntv)
        share = host["seconds"] / len(self.jobs) + time.perf_counter() - tick
        host["reported"][i] = True
        on_done(Trained(job=job, model=model, history=host["history"][i],
                        val_proba=val_proba, test_proba=test_proba, seconds=share))  # fmt: skip
        self.handover_s += time.perf_counter() - tick

    def _save_checkpoint(self, path: Path, host: dict) -> None:
        arrays = {}
        for part, values in self.program.state.items():
            for j, value in enumerate(values):
                arrays[f"{part}/{j}"] = np.asarray(value)
        for key in ("epoch", "active", "best_loss", "wait", "lr", "plateau_best",
                    "plateau_wait", "reported", "seconds"):  # fmt: skip
            arrays[f"host/{key}"] = np.asarray(host[key])
        arrays["jobs"] = np.array([j.name for j in self.jobs])  # engine.checkpoint_jobs
        for i, history in enumerate(host["history"]):
            for key, values in history.items():
                arrays[f"history/{i}/{key}"] = np.asarray(values, np.float64)
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)

    def _load_checkpoint(self, path: Path, host: dict) -> dict:
        with np.load(path) as z:
            names = [str(n) for n in z["jobs"]]
            if names != [j.name for j in self.jobs]:
                raise UserError(
                    f"{path}: a checkpoint of other models ({', '.join(names)}); delete it to"
                    " retrain them from the start"
                )
            state = self.program.state
            for part, values in state.items():
                state[part] = [jnp.asarray(z[f"{part}/{j}"]) for j in range(len(values))]
            for key in host:
                if f"host/{key}" in z.files:
                    value = z[f"host/{key}"]
                    host[key] = value.item() if value.ndim == 0 else value.copy()
            for name in z.files:
                if name.startswith("history/"):
                    _, i, key = name.split("/", 2)
                    host["history"][int(i)][key] = [float(x) for x in z[name]]
        return host
