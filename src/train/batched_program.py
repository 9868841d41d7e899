"""The batched engine's device side: K models of one recipe as one stacked state on the
accelerator, and the compiled programs over it.

- each model is built by `build_model` under its own seed (the sequential engine's initial
  weights), and the K copies of every variable are stacked along a leading axis;
- one stateless train step (`stateless_call` + `optimizer.stateless_apply`) is `jax.vmap`ped
  over that axis, and an epoch's steps are one `jax.lax.scan` (on a GPU), with the training
  images resident on the device and each model's batches gathered there from its own
  permutation;
- the programs train a copy of the model whose convolutions are patches times the kernel as a
  matrix (src/model/matmul_conv.py): under vmap one batched matrix product per layer where Keras's
  convolutions become grouped convolutions, which run far slower; the plain model gets the
  trained weights;
- the last `clean_epochs` train on the images as they are: each model's copy of its
  augmentation's switch (`Switched`) is set to off in the state before those epochs;
- each epoch ends with every validated model scoring its own validation rows, in one program,
  and the host reading back a few numbers per model.

Models whose epoch has fewer steps, or which have stopped, sit out the rest of the program's
steps (their updates are masked), so one model never changes another; where the models with
more steps are few (the full fits beside the fold models), the epoch's last steps are a program
of those models alone (`epoch_segments`). The host's side (early stopping, the plateau
schedule, checkpoints, handing models over) is src/train/batched.py.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import keras
import numpy as np

from src.model.augment import clean_epoch
from src.model.augment.layers import Switched, augmenting_model
from src.model.cnn import build_model
from src.model.matmul_conv import with_matmul_convs
from src.train.device import reset_keras
from src.train.engine import Job
from src.train.ensemble import PREDICT_BATCH
from src.train.fit import crossentropy
from src.train.optimizer import make_optimizer, rate_at

# "matmul": convolutions as patches times a matrix (src/model/matmul_conv.py), a batched GEMM under
# vmap; "native": Keras's convolutions, grouped convolutions under vmap.
CONV = "matmul"
# An epoch's tail, where only the models with more steps train (the full fits beside the fold
# models), runs as a program of those models alone when that saves at least this share of the
# epoch's model-steps: the masked models would otherwise be computed and thrown away.
TAIL_SAVING = 0.1


def epoch_segments(steps: np.ndarray, least: float = TAIL_SAVING) -> list[tuple[int, int, int]]:
    """An epoch's step ranges and the models each trains: [(start, stop, first model)]. At most
    two: every model up to a cut, then only the last ones in the stack, if they are the ones
    with more steps (the full fits after the fold models) and leaving the others out saves at
    least `least` of the epoch's model-steps."""
    k, longest = len(steps), int(steps.max())
    whole, best = k * longest, None
    for first in range(1, k):
        cut = int(steps[:first].max())
        if cut < int(steps[first:].min()):
            cost = k * cut + (k - first) * (longest - cut)
            if best is None or cost < best[0]:
                best = (cost, cut, first)
    if best is None or whole - best[0] < least * whole:
        return [(0, longest, 0)]
    _, cut, first = best
    return [(0, cut, 0), (cut, longest, first)]


def build_trainer(params: dict, augment: str, seed: int, num_classes: int):
    """(trainer, model): the model and, in front of it for training only, its augmentation."""
    model = build_model(params, num_classes)
    return augmenting_model(model, params, augment, seed), model


def _values(variables) -> list[np.ndarray]:
    return [np.asarray(v.value) for v in variables]


class BatchedProgram:
    """The jobs' models stacked on the device (`state`), their data (`const`) and the compiled
    programs that train, score and predict them.

    `conv`: how the programs compute convolutions (CONV); `tail`: the epoch's tail as a program
    of its own models (`epoch_segments`); `unroll`: steps per iteration of the epoch's loop.
    """

    def __init__(self, params: dict, data, jobs: list[Job], *, augment: str, epochs: int,
                 conv: str = CONV, tail: bool = True, unroll: int = 1):  # fmt: skip
        self.params, self.data, self.jobs, self.epochs = params, data, jobs, epochs
        self.batch, self.unroll = int(params["batch_size"]), unroll
        # Validated jobs come first (the caller's order: folds, then full fits), so the epoch's
        # validation runs on the static slice [:n_val] of the stack.
        self.n_val = sum(j.val_rows is not None for j in jobs)
        if any(j.val_rows is None for j in jobs[: self.n_val]):
            raise ValueError("validated jobs must come before the others")
        self._build_state(augment, conv)
        self._place_data(tail)
        self.first_clean = clean_epoch(params, epochs)
        switches = {id(layer.on) for layer in self.trainer.layers if isinstance(layer, Switched)}
        self.switches = [i for i, v in enumerate(self.trainer.non_trainable_variables)
                         if id(v) in switches]  # fmt: skip
        # On a GPU an epoch's segment is one scan; XLA's CPU backend runs convolutions inside a
        # loop about ten times slower than outside one, so there each step is its own call.
        self.steps_per_call = self.max_steps if jax.default_backend() == "gpu" else 1
        self.orders = jax.jit(jax.vmap(self._order, in_axes=(0, 0, 0, None)))
        self.run_steps = jax.jit(self._steps_program, donate_argnums=0, static_argnames="models")
        self.score = jax.jit(self._score_program, donate_argnums=0)
        self._predict = jax.jit(self._predict_program, static_argnames="chunk")

    def _build_state(self, augment: str, conv: str) -> None:
        """The K models, built as the sequential engine builds them, stacked into `state`."""
        states = []
        for job in self.jobs:
            # Keras's global state reset as the sequential engine resets it, without its garbage
            # collection (a fraction of a second each, for nothing: the models are kept).
            reset_keras(free_memory=False)
            keras.utils.set_random_seed(job.seed)  # the sequential engine's initial weights
            trainer, model = build_trainer(self.params, augment, job.seed,
                                           len(self.data.layout.classes))  # fmt: skip
            states.append((_values(trainer.trainable_variables),
                           _values(trainer.non_trainable_variables)))  # fmt: skip
        # The programs' template: the last model, or its copy with matrix-product convolutions
        # (the same variables in the same order, so every model's values fit it).
        self.model = self.net = model
        if conv == "matmul":
            self.net = with_matmul_convs(model)
            trainer = augmenting_model(self.net, self.params, augment, self.jobs[-1].seed)
        self.trainer = trainer
        rate = float(self.params["learning_rate"])
        self.optimizer = make_optimizer(
            self.params["optimizer"], rate, weight_decay=self.params["weight_decay"]
        )
        self.optimizer.build(trainer.trainable_variables)
        names = [v.name for v in self.optimizer.variables]
        self.lr_index, self.iter_index = names.index("learning_rate"), names.index("iteration")
        opt_values = _values(self.optimizer.variables)

        def stack(lists):
            return [jnp.asarray(np.stack(vs)) for vs in zip(*lists, strict=True)]

        # Copies made on the host: an eager copy on the device compiles a program per shape.
        tv, best_tv = stack([s[0] for s in states]), stack([s[0] for s in states])
        ntv, best_ntv = stack([s[1] for s in states]), stack([s[1] for s in states])
        ov = stack([opt_values] * len(self.jobs))
        self.state = {"tv": tv, "ntv": ntv, "ov": ov, "best_tv": best_tv, "best_ntv": best_ntv}

    def _place_data(self, tail: bool) -> None:
        """Steps per model, the epoch's segments, and the images, labels and rows on the device."""
        jobs = self.jobs
        n_rows = np.array([len(j.train_rows) for j in jobs])
        self.steps = np.ceil(n_rows / self.batch).astype(np.int32)  # per model, like fit's
        self.max_steps = int(self.steps.max())
        self.segments = epoch_segments(self.steps) if tail else [(0, self.max_steps, 0)]
        width = int(n_rows.max())
        rows = np.stack([np.resize(j.train_rows, width) for j in jobs])  # padded by repetition
        self.const = {
            "x": jnp.asarray(self.data.x_train),  # uint8 on the device; cast per batch
            "y": jnp.asarray(self.data.y_train.astype(np.int32)),
            "rows": jnp.asarray(rows.astype(np.int32)),
            "n_rows": jnp.asarray(n_rows.astype(np.int32)),
            "steps": jnp.asarray(self.steps),
            "keys": jnp.stack([jax.random.key_data(jax.random.key(j.seed)) for j in jobs]),
        }
        if self.n_val:
            val = [j.val_rows for j in jobs[: self.n_val]]
            v_width = math.ceil(max(map(len, val)) / PREDICT_BATCH) * PREDICT_BATCH
            self.const["val_rows"] = jnp.asarray(np.stack([np.resize(v, v_width) for v in val]))
            self.const["val_n"] = jnp.asarray(np.array([len(v) for v in val], np.int32))

    # ----------------------------------------------------------------------------------------
    # What the host calls
    # ----------------------------------------------------------------------------------------

    def run_epoch(self, epoch: int, active: np.ndarray, lr: np.ndarray,
                  best_loss: np.ndarray) -> dict:  # fmt: skip
        """One epoch of every active model (`lr`: the plateau schedule's rates); `state` moves
        on. Returns the epoch's metrics per model on the host: loss, accuracy, learning_rate,
        and for the validated models val_loss, val_accuracy, improved."""
        c = self.const
        if self.switches:  # augmentation on before the clean epochs, off from the first of them
            on = np.full(len(self.jobs), epoch < self.first_clean, np.float32)
            for i in self.switches:
                self.state["ntv"][i] = jnp.asarray(on)
        active, lr = jnp.asarray(active), jnp.asarray(lr)
        batches = self.orders(c["keys"], c["rows"], c["n_rows"], epoch)
        state, loss, correct = self.state, 0.0, 0.0
        for start, stop, models in self.segments:
            length = min(self.steps_per_call, stop - start)
            for first in range(start, stop, length):
                state, step_loss, step_correct = self.run_steps(
                    state, batches[:, first : first + length], first, active, lr, c,
                    models=models,
                )  # fmt: skip
                loss, correct = loss + step_loss, correct + step_correct
        self.state, metrics = self.score(state, active, lr, jnp.asarray(best_loss), c)
        done = np.maximum(self.steps, 1)
        metrics = {k: np.asarray(v) for k, v in metrics.items()}  # waits for the device
        metrics.update(loss=np.asarray(loss) / done, accuracy=np.asarray(correct) / done)
        return metrics

    def weights(self, i: int, best: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Model i's (trainable, non-trainable) values on the host: its best epoch's or its last.
        Sliced on the host: slicing each array on the device compiles a program per shape."""
        tv, ntv = ("best_tv", "best_ntv") if best else ("tv", "ntv")
        return ([np.asarray(a)[i] for a in self.state[tv]],
                [np.asarray(a)[i] for a in self.state[ntv]])  # fmt: skip

    def load_into_model(self, tv: list, ntv: list) -> keras.Model:
        """The plain Keras model (Keras's convolutions, no augmentation) holding these values."""
        for variable, value in zip(self.trainer.trainable_variables, tv, strict=True):
            variable.assign(value)
        for variable, value in zip(self.trainer.non_trainable_variables, ntv, strict=True):
            variable.assign(value)
        if self.net is not self.model:  # the same variables in the same order
            self.model.set_weights(self.net.get_weights())
        return self.model

    def predict(self, tv, ntv, x: np.ndarray) -> np.ndarray:
        """One model's probabilities for uint8 images, in inference-size chunks.

        Padded to whole chunks, so folds whose sizes differ by a row share one compiled program.
        """
        n = len(x)
        chunk = min(PREDICT_BATCH, n)
        padded = np.zeros((math.ceil(n / chunk) * chunk, *x.shape[1:]), x.dtype)
        padded[:n] = x
        return np.asarray(self._predict(tv, ntv, jnp.asarray(padded), chunk=chunk))[:n]

    # ----------------------------------------------------------------------------------------
    # The programs (traced once per shape; jax.vmap over the models' axis)
    # ----------------------------------------------------------------------------------------

    def _lr(self, iteration, steps, plateau_lr):
        """This model's learning rate at `iteration` (its own steps per epoch)."""
        if self.params["schedule"] == "plateau":
            return plateau_lr
        p = self.params
        return rate_at(iteration, p["schedule"], p["learning_rate"], steps, self.epochs)

    def _train_step(self, tv, ntv, ov, x, y, lr):
        """One model's stateless Keras train step (vmapped over the models)."""

        def loss_fn(tv):
            proba, new_ntv = self.trainer.stateless_call(tv, ntv, x, training=True)
            loss = crossentropy(y, proba, self.params["label_smoothing"])
            return jnp.mean(loss), (new_ntv, proba)

        (loss, (ntv, proba)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv)
        ov = list(ov)
        ov[self.lr_index] = jnp.asarray(lr, ov[self.lr_index].dtype)
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        correct = jnp.mean((jnp.argmax(proba, axis=-1) == y).astype(jnp.float32))
        return tv, ntv, ov, loss, correct

    def _order(self, key, rows, n_rows, epoch):
        """One model's batches for `epoch`, (max_steps, batch) rows: its own permutation, the
        last batch topped up from the start of it, padding past its own steps."""
        noise = jax.random.uniform(
            jax.random.fold_in(jax.random.wrap_key_data(key), epoch), (rows.shape[0],)
        )
        order = jnp.argsort(jnp.where(jnp.arange(rows.shape[0]) < n_rows, noise, 2.0))
        positions = jnp.arange(self.max_steps * self.batch)
        positions = jnp.where(positions < n_rows, positions, positions % n_rows)
        return rows[order[positions]].reshape(self.max_steps, self.batch)

    def _model_steps(self, tv, ntv, ov, batches, first, steps, active, plateau_lr, const):
        """One model through `batches` (L, batch), step indices first..first+L-1 of the epoch;
        steps past its own `steps`, or of a stopped model, leave it unchanged."""

        def step(carry, inputs):
            tv, ntv, ov = carry
            index, batch_rows = inputs
            x = const["x"][batch_rows].astype("float32")
            y = const["y"][batch_rows]
            lr = self._lr(ov[self.iter_index], steps, plateau_lr)
            new = self._train_step(tv, ntv, ov, x, y, lr)
            live = active & (index < steps)
            keep = lambda a, b: jnp.where(live, a, b)  # noqa: E731
            carry = jax.tree.map(keep, new[:3], (tv, ntv, ov))
            return carry, (keep(new[3], 0.0), keep(new[4], 0.0))

        if batches.shape[0] == 1:  # no loop at all (the CPU)
            (tv, ntv, ov), (loss, correct) = step((tv, ntv, ov), (first, batches[0]))
            return tv, ntv, ov, loss, correct
        indices = first + jnp.arange(batches.shape[0])
        (tv, ntv, ov), (losses, corrects) = jax.lax.scan(
            step, (tv, ntv, ov), (indices, batches), unroll=self.unroll
        )
        return tv, ntv, ov, losses.sum(), corrects.sum()

    def _steps_program(self, state, batches, first, active, plateau_lr, const, models=0):
        """The models from index `models` on (all: 0) through their next L batches: (state,
        summed losses, summed accuracies; zero for the models before `models`)."""
        run = jax.vmap(self._model_steps, in_axes=(0, 0, 0, 0, None, 0, 0, 0, None))
        trained = ("tv", "ntv", "ov")
        tail = lambda a: a[models:]  # noqa: E731  (static: all of it, or the last models)
        *new, loss, correct = run(*([tail(a) for a in state[part]] for part in trained),
                                  tail(batches), first, tail(const["steps"]), tail(active),
                                  tail(plateau_lr), const)  # fmt: skip
        if models:  # written back in place (the state is donated); the others sat out
            put = lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b, models, 0)  # noqa: E731
            new = [[put(a, b) for a, b in zip(state[part], values, strict=True)]
                   for part, values in zip(trained, new, strict=True)]  # fmt: skip
            zeros = jnp.zeros(models, loss.dtype)
            loss, correct = jnp.concatenate([zeros, loss]), jnp.concatenate([zeros, correct])
        return {**state, **dict(zip(trained, new, strict=True))}, loss, correct

    def _forward(self, tv, ntv, x):
        """One model's class probabilities for a float batch, inference mode."""
        proba, _ = self.trainer.stateless_call(tv, ntv, x, training=False)
        return proba.astype(jnp.float32)

    def _evaluate(self, tv, ntv, val_rows, val_n, const):
        """One model's validation loss and accuracy on its own rows (padding masked)."""
        chunks = val_rows.reshape(-1, PREDICT_BATCH)

        def score(rows):
            proba = self._forward(tv, ntv, const["x"][rows].astype("float32"))
            y = const["y"][rows]
            loss = crossentropy(y, proba, self.params["label_smoothing"])
            return loss, (jnp.argmax(proba, axis=-1) == y).astype(jnp.float32)

        losses, correct = jax.lax.map(score, chunks)
        valid = jnp.arange(val_rows.shape[0]) < val_n
        losses, correct = losses.reshape(-1), correct.reshape(-1)
        return (jnp.sum(jnp.where(valid, losses, 0.0)) / val_n,
                jnp.sum(jnp.where(valid, correct, 0.0)) / val_n)  # fmt: skip

    def _score_program(self, state, active, plateau_lr, best_loss, const):
        """End of an epoch: the rate each model ends it with; the validated models' scores on
        their own rows, and their best weights kept (Keras's EarlyStopping: strictly lower)."""
        lr = jax.vmap(self._lr)(state["ov"][self.iter_index], const["steps"], plateau_lr)
        metrics = {"learning_rate": lr}
        if not self.n_val:
            return state, metrics
        v = self.n_val
        head = lambda tree: [a[:v] for a in tree]  # noqa: E731
        val_loss, val_acc = jax.vmap(self._evaluate, in_axes=(0, 0, 0, 0, None))(
            head(state["tv"]), head(state["ntv"]), const["val_rows"], const["val_n"], const
        )
        improved = active[:v] & (val_loss < best_loss)
        better = jnp.concatenate([improved, jnp.zeros(len(self.jobs) - v, bool)])

        def pick(new, old):
            return jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

        state = {
            **state,
            "best_tv": [pick(a, b) for a, b in zip(state["tv"], state["best_tv"], strict=True)],
            "best_ntv": [pick(a, b) for a, b in zip(state["ntv"], state["best_ntv"], strict=True)],
        }
        metrics.update(val_loss=val_loss, val_accuracy=val_acc, improved=improved)
        return state, metrics

    def _predict_program(self, tv, ntv, x, chunk):
        """Probabilities of one model (sliced out of the stack) for uint8 images, by chunk."""
        chunks = x.reshape(-1, chunk, *x.shape[1:])
        proba = jax.lax.map(lambda b: self._forward(tv, ntv, b.astype("float32")), chunks)
        return proba.reshape(x.shape[0], -1)
