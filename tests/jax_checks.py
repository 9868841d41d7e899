"""Checks of the batched engine that need Keras on JAX, run by tests/test_batched.py as

    KERAS_BACKEND=jax PYTHONPATH=. python tests/jax_checks.py CHECK [CHECK ...]

(the pytest process has Keras on TensorFlow already). Prints one JSON line: each check's name
and what it measured; the tests assert on it. One process runs them all (JAX starts once).
"""

from __future__ import annotations

import json
import sys

import jax.numpy as jnp
import keras
import numpy as np

from conftest import NARROW  # this script's folder is on the path
from src.config import ROOT
from src.data.load import load_digits
from src.model.augment.layers import augmenting_model
from src.model.cnn import build_model
from src.params import default_params, parse_override
from src.train.batched import BatchedEngine
from src.train.batched_program import BatchedProgram
from src.train.engine import Job
from src.train.fit import compile_model, fit_model
from src.train.folds import fold_jobs


def sample(n: int):
    data = load_digits(ROOT / "input" / "sample")
    data.x_train, data.y_train = data.x_train[:n], data.y_train[:n]
    data.x_test = data.x_test[:100]
    return data


def narrow(**changes) -> dict:
    """The tests' network (conftest.NARROW, as --set flags) with `changes`."""
    fixed = dict(parse_override(text, "cnn") for text in NARROW[1::2])
    return {**default_params("cnn"), **fixed, **changes}


def furthest(a, b) -> float:
    """The largest absolute difference between two lists of arrays, element by element."""
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def steps() -> dict:
    """Four vmapped steps against Keras's own train step on the same batches and weights, with
    the convolutions as matrix products (the default) and as Keras's own.

    Models 0 and 1 share a seed (so they must stay identical: one never changes another),
    model 2 has another. SGD, because Adam divides by sqrt(v): on gradients that are zero but
    for rounding it turns float noise into whole steps, which hides real differences. Weight
    decay on, strong enough that a step without it would land measurably elsewhere.
    """
    data = sample(640)
    params = narrow(optimizer="sgd", weight_decay=2.0)  # dropout, BatchNorm, warp: on
    rng = np.random.default_rng(0)
    batches = [rng.choice(640, 64, replace=False).astype(np.int32) for _ in range(4)]
    rows = np.arange(640)
    mine, start = {}, {}
    for conv in ("matmul", "native"):
        jobs = [Job("full", 1, rows, None, 7), Job("full", 2, rows, None, 7),
                Job("full", 3, rows, None, 8)]  # fmt: skip
        program = BatchedProgram(params, data, jobs, augment="affine", epochs=3, conv=conv)
        start[conv] = [np.asarray(v[0]) for v in program.state["tv"]]
        state, on = program.state, jnp.ones(3, bool)
        for i, b in enumerate(batches):
            stacked = jnp.asarray(np.stack([b, b, b])[:, None, :])
            state, _, _ = program.run_steps(state, stacked, i, on, jnp.full(3, 0.0), program.const)
        mine[conv] = [np.asarray(v) for v in state["tv"]]

    keras.backend.clear_session()
    keras.utils.set_random_seed(7)  # the sequential engine's set-up for seed 7
    trainer = augmenting_model(build_model(params), params, "affine", 7)
    compile_model(trainer, params, int(program.steps[0]), 3)
    for b in batches:
        trainer.train_on_batch(data.x_train[b].astype("float32"), data.y_train[b])
    ref = [np.asarray(v.value) for v in trainer.trainable_variables]
    out = {"weight_scale": max(float(np.abs(r).max()) for r in ref)}
    for conv, m in mine.items():
        out[conv] = {
            "max_abs_diff": furthest([v[0] for v in m], ref),
            "twin_diff": furthest([v[0] for v in m], [v[1] for v in m]),
            "other_diff": furthest([v[0] for v in m], [v[2] for v in m]),
            "moved": furthest([v[0] for v in m], start[conv]),
        }
    return out


def scan_epoch() -> dict:
    """An epoch as one `lax.scan` per segment (the GPU's path) ends where step-by-step calls (the
    CPU's) end, and where one scan of every model over all the steps ends (no tail program),
    with a short model, a stopped one and a model of another seed in the stack.

    Within rounding, amplified: XLA fuses the loop body differently, and BatchNorm over a
    channel of near-constant activations turns 1e-7 into 1e-4 after a few steps.
    """
    data = sample(192)
    jobs = [Job("full", 2, np.arange(128), None, 2), Job("full", 1, np.arange(192), None, 1),
            Job("full", 3, np.arange(192), None, 3)]  # fmt: skip
    params = narrow(optimizer="sgd")  # see `steps` on Adam
    ends, segments = {}, {}
    for way in ("steps", "scan", "scan_no_tail"):
        program = BatchedProgram(params, data, jobs, augment="affine", epochs=2,
                                 tail=way != "scan_no_tail")  # fmt: skip
        segments[way] = [list(segment) for segment in program.segments]
        start = [np.asarray(v[2]) for v in program.state["tv"]]
        start1 = [np.asarray(v[1]) for v in program.state["tv"]]
        program.steps_per_call = 1 if way == "steps" else program.max_steps
        active, lr = np.array([True, True, False]), np.zeros(3, np.float32)
        metrics = program.run_epoch(0, active, lr, best_loss=np.zeros(0, np.float32))
        ends[way] = ([np.asarray(v) for v in program.state["tv"]], metrics)
    (a, ma), (b, mb), (n, mn) = ends["steps"], ends["scan"], ends["scan_no_tail"]
    return {
        "max_abs_diff": furthest(a, b),
        "no_tail_diff": furthest(b, n),
        "moved": furthest([x[1] for x in a], start1),
        "loss_diff": float(
            max(np.abs(ma["loss"] - mb["loss"]).max(), np.abs(mb["loss"] - mn["loss"]).max())
        ),
        "stopped_unchanged": all(np.array_equal(x[2], s) for x, s in zip(b, start, strict=True)),
        "steps": [int(s) for s in program.steps],
        "segments": segments,
    }


def orders() -> dict:
    """Each fold model's batches over two epochs: only its own training rows, every one of them
    each epoch, a new order each epoch, and its steps ceil(rows / batch)."""
    data = sample(1000)
    jobs = fold_jobs(data.y_train, 3, 5)
    program = BatchedProgram(narrow(), data, jobs, augment="affine", epochs=2)
    c = program.const
    out = {"subset": True, "covers": True, "steps_ok": True, "reshuffled": True}
    epochs = [np.asarray(program.orders(c["keys"], c["rows"], c["n_rows"], e)) for e in (0, 1)]
    for k, job in enumerate(jobs):
        steps = int(program.steps[k])
        out["steps_ok"] &= steps == -(-len(job.train_rows) // program.batch)
        seen = [e[k, :steps].ravel() for e in epochs]
        for rows in seen:
            out["subset"] &= bool(np.isin(rows, job.train_rows).all())
            out["subset"] &= not np.isin(rows, job.val_rows).any()
            out["covers"] &= set(rows.tolist()) == set(job.train_rows.tolist())
        out["reshuffled"] &= not np.array_equal(seen[0], seen[1])
    out["models_differ"] = not np.array_equal(epochs[0][0, :5], epochs[0][1, :5])
    return out


def early_stopping() -> dict:
    """A fold model whose validation labels are shuffled: its validation loss rises as it learns,
    so it must stop `patience` epochs after its best epoch and hand back that epoch's weights.
    A full fit beside it trains every epoch."""
    data = sample(640)
    rng = np.random.default_rng(1)
    val = np.arange(320, 640)
    data.y_train[val] = rng.permutation(data.y_train[val])
    jobs = [Job("fold", 1, np.arange(320), val, 3), Job("full", 1, np.arange(320), None, 4)]
    engine = BatchedEngine(narrow(), data, epochs=8, patience=2, augment="none",
                           verbose=0)  # fmt: skip
    done = {}

    def keep(trained):  # the model object is reused: score it now
        proba = trained.model.predict(data.x_train[val].astype("float32"), verbose=0)
        loss = keras.losses.sparse_categorical_crossentropy(data.y_train[val], proba)
        done[trained.job.name] = {
            "epochs": trained.epochs,
            "best_epoch": trained.best_epoch,
            "val_loss": trained.history.get("val_loss"),
            "saved_model_val_loss": float(np.mean(np.asarray(loss))),
            "val_proba_matches_model": bool(np.allclose(proba, trained.val_proba, atol=1e-5))
            if trained.val_proba is not None else None,
        }  # fmt: skip

    engine.train(jobs, keep)
    return done


def clean() -> dict:
    """`clean_epochs`: an epoch the switch turns off trains each model as with no augmentation
    at all (the same weights after it), an epoch before the switch does not; the switch in each
    model's state is on through the epochs before and off from the first clean one."""
    data = sample(192)
    jobs = [Job("full", 1, np.arange(192), None, 1), Job("full", 2, np.arange(128), None, 2)]
    on, lr, none = np.ones(2, bool), np.zeros(2, np.float32), np.zeros(0, np.float32)
    weights, switch = {}, []
    for name, augment, n_clean in (("none", "none", 0), ("all_clean", "affine", 2),
                                   ("last_clean", "affine", 1)):  # fmt: skip
        params = narrow(optimizer="sgd", clean_epochs=n_clean)
        program = BatchedProgram(params, data, jobs, augment=augment, epochs=2)
        for epoch in range(2 if name == "last_clean" else 1):
            program.run_epoch(epoch, on, lr, none)
            weights[name, epoch] = [np.asarray(v) for v in program.state["tv"]]
            if name == "last_clean":
                switch.append([np.asarray(program.state["ntv"][i]).tolist()
                               for i in program.switches])  # fmt: skip
    fitted = {}  # the sequential engine's model.fit on JAX, 2 epochs
    runs = (
        ("none", "none", 0),
        ("all_clean", "affine", 2),
        ("last_clean", "affine", 1),
        ("augmented", "affine", 0),
    )
    for name, augment, n_clean in runs:
        keras.utils.set_random_seed(1)
        params = narrow(optimizer="sgd", clean_epochs=n_clean)
        model = build_model(params)
        fit_model(model, params, (data.x_train, data.y_train), None, epochs=2, patience=1,
                  augment=augment, seed=1, verbose=0)  # fmt: skip
        fitted[name] = [np.asarray(v) for v in model.trainable_variables]
    return {
        "clean_vs_none": furthest(weights["all_clean", 0], weights["none", 0]),
        "augmented_vs_none": furthest(weights["last_clean", 0], weights["none", 0]),
        "switch": switch,
        "fit_clean_vs_none": furthest(fitted["all_clean"], fitted["none"]),
        "fit_last_clean_vs_augmented": furthest(fitted["last_clean"], fitted["augmented"]),
    }


def precision() -> dict:
    """Under mixed_bfloat16 every model computes in bfloat16 (the programs' copy with
    matrix-product convolutions, and each model handed over): Keras's per-model reset
    (clear_session) would put the policy back to float32."""
    from src.train.device import configure_device

    def convs(model) -> list[str]:
        return sorted({layer.compute_dtype for layer in model.layers
                       if isinstance(layer, keras.layers.Conv2D)})  # fmt: skip

    configure_device("mixed_bfloat16")
    data = sample(128)
    jobs = [Job("full", 1, np.arange(128), None, 1), Job("full", 2, np.arange(128), None, 2)]
    engine = BatchedEngine(narrow(), data, epochs=1, patience=1, augment="affine",
                           verbose=0, predict_test=False)  # fmt: skip
    done = {}
    engine.train(jobs, lambda t: done.update({t.job.name: (convs(t.model), t.history["loss"])}))
    out = {
        "program": convs(engine.program.net),
        "handed_over": {name: dtypes for name, (dtypes, _) in done.items()},
        "losses_finite": all(np.isfinite(loss).all() for _, loss in done.values()),
        "policy_after": keras.mixed_precision.global_policy().name,
    }
    keras.mixed_precision.set_global_policy("float32")
    return out


if __name__ == "__main__":
    print(json.dumps({name: globals()[name]() for name in sys.argv[1:]}))
