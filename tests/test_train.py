"""The training path used on a GPU or a non-TensorFlow Keras backend: augmentation inside the
model (RandomWarp), fed from arrays in memory. CI has no GPU, so the path is forced on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import keras
import numpy as np
import pytest

from src import UserError
from src.config import ROOT
from src.model.augment.warp import RandomWarp
from src.model.cnn import build_model
from src.outputs.run_folder import save_model
from src.params import default_params
from src.train import device, fit


def first_digits(sample_frames, n: int):
    """The sample's first `n` training images (uint8, 28x28x1) and labels."""
    train = sample_frames[0].iloc[:n]
    return train.iloc[:, 1:].to_numpy("uint8").reshape(-1, 28, 28, 1), train.iloc[:, 0].to_numpy()


@pytest.fixture
def in_model(monkeypatch):
    """Augment in the model, as on a GPU: both the run's check and `fit_model` see it."""
    monkeypatch.setattr(device, "augment_in_model", lambda: True)
    monkeypatch.setattr(fit, "augment_in_model", lambda: True)


def test_in_model_augmentation_trains_and_leaves_the_model_bare(in_model, sample_frames):
    x, y = first_digits(sample_frames, 1500)
    keras.utils.set_random_seed(0)
    params = {**default_params("cnn"), "elastic_alpha": 34.0}
    model = build_model(params)
    history = fit.fit_model(
        model, params, (x[:1200], y[:1200]), (x[1200:].astype("float32"), y[1200:]),
        epochs=3, patience=3, augment="affine", seed=0, verbose=0,
    )  # fmt: skip
    assert len(history.history["val_accuracy"]) == 3
    proba = model.predict(x[1200:].astype("float32"), verbose=0)
    assert np.mean(proba.argmax(1) == y[1200:]) > 0.6  # chance is 0.1
    # what is saved and predicts is the bare model: no augmentation layer, same answer twice
    assert not any(isinstance(layer, RandomWarp) for layer in model.layers)
    again = model.predict(x[1200:].astype("float32"), verbose=0)
    np.testing.assert_array_equal(proba, again)


def test_idg_has_no_in_model_form(in_model):
    params = default_params("cnn")
    x, y = np.zeros((8, 28, 28, 1), "uint8"), np.zeros(8, "int64")
    with pytest.raises(UserError, match="--augment idg needs TensorFlow on a CPU; use --augment"):
        fit.fit_model(build_model(params), params, (x, y), (x.astype("float32"), y),
                        epochs=1, patience=1, augment="idg", seed=0)  # fmt: skip


def test_an_augmentation_the_run_cannot_apply_is_refused_before_its_run_folder(in_model, runner):
    """On a GPU (in-model augmentation) `--augment idg` ends in one line before anything is
    written: a run folder left behind would make the corrected rerun a refused resume."""
    args = ["--data-dir", str(ROOT / "input" / "sample"), "--trials", "0", "--run-name", "x"]
    code, out, err = runner(*args, "--augment", "idg")
    assert code == 2
    assert err.strip() == "error: --augment idg needs TensorFlow on a CPU; use --augment affine"
    assert [p for p in runner.written() if p.is_file()] == []
    assert not (runner.runs / "x").exists()


def test_sequential_early_stopping_hands_back_the_best_epoch(sample_frames):
    """Validation labels shuffled: the validation loss rises as the model learns, so the fold
    stops --patience epochs after its best (first) epoch and keeps that epoch's weights."""
    from src.data.load import load_digits
    from src.train.engine import Job
    from src.train.sequential import SequentialEngine

    data = load_digits(ROOT / "input" / "sample")
    data.x_train, data.y_train, data.x_test = (
        data.x_train[:640],
        data.y_train[:640],
        data.x_test[:50],
    )
    val = np.arange(320, 640)
    data.y_train[val] = np.random.default_rng(1).permutation(data.y_train[val])
    engine = SequentialEngine(default_params("cnn"), data, epochs=8, patience=2, augment="none",
                              verbose=0)  # fmt: skip
    done = []
    engine.train([Job("fold", 1, np.arange(320), val, 3), Job("full", 1, np.arange(320), None, 4)],
                 done.append)  # fmt: skip
    fold, full = done
    losses = fold.history["val_loss"]
    assert fold.best_epoch == int(np.argmin(losses)) + 1
    assert fold.epochs == fold.best_epoch + 2 < 8  # stopped by --patience 2
    proba = fold.model.predict(data.x_train[val].astype("float32"), verbose=0)
    loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(data.y_train[val], proba)))
    assert loss == pytest.approx(losses[fold.best_epoch - 1], rel=1e-4)  # the best epoch's weights
    assert loss != pytest.approx(losses[-1], rel=1e-3)
    assert full.epochs == 8  # nothing held out: every epoch


def test_label_smoothing_is_kerass_one_hot_smoothing_and_survives_saving(tmp_path):
    """`crossentropy` with smoothing s equals Keras's CategoricalCrossentropy(label_smoothing=s)
    on one-hot targets (both engines train with it); a model trained with it is saved as plain
    Keras loads it."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(10), size=32).astype("float32")
    labels = rng.integers(0, 10, size=32)
    one_hot = keras.utils.to_categorical(labels, 10)
    for s in (0.0, 0.1, 0.3):
        expected = keras.losses.CategoricalCrossentropy(label_smoothing=s, reduction=None)
        np.testing.assert_allclose(
            np.asarray(fit.crossentropy(labels, proba, s)), np.asarray(expected(one_hot, proba)),
            rtol=1e-5,
        )  # fmt: skip
    params = {**default_params("cnn"), "label_smoothing": 0.1, "filters": 8}
    model = build_model(params)
    fit.compile_model(model, params, steps_per_epoch=1, epochs=1)
    x, y = np.zeros((4, 28, 28, 1), "float32"), np.arange(4)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.loss.smoothing == 0.1
    save_model(tmp_path, model, {}, "fit.json", {}, {"test_proba": np.zeros(1)})
    # plain Keras loads the saved model without this project's code (no custom loss in it)
    check = (
        "import keras, numpy as np\n"
        f"m = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
        "print(np.asarray(m.predict(np.zeros((4, 28, 28, 1), 'float32'), verbose=0)).tolist())"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]),
                               model.predict(x, verbose=0), rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
@pytest.mark.parametrize("steps_per_epoch, epochs", [(7, 1), (7, 4), (113, 18)])
def test_both_engines_schedule_is_kerass_own_to_the_bit(schedule, steps_per_epoch, epochs):
    """`rate_at`, which both engines call, gives Keras's CosineDecay (with its warm-up) and
    ExponentialDecay (staircase) rates, in float32, at every step of a run and past its end."""
    import keras

    from src.train.optimizer import DECAY, rate_at

    lr = 3e-3
    schedules = keras.optimizers.schedules
    if schedule == "exponential":
        reference = schedules.ExponentialDecay(lr, steps_per_epoch, DECAY, staircase=True)
    elif epochs == 1:
        reference = schedules.CosineDecay(lr, steps_per_epoch)
    else:
        decay = steps_per_epoch * (epochs - 1)
        reference = schedules.CosineDecay(lr / 10, decay, warmup_target=lr,
                                          warmup_steps=steps_per_epoch)  # fmt: skip
    steps = np.arange(steps_per_epoch * epochs + 3)
    ours = np.array([float(rate_at(s, schedule, lr, steps_per_epoch, epochs)) for s in steps])
    theirs = np.array([float(reference(s)) for s in steps])
    np.testing.assert_array_equal(ours.astype("float32"), theirs.astype("float32"))


def test_a_full_fit_with_ema_ends_on_the_weight_average(sample_frames):
    """`ema_momentum`: the model `fit_model` hands back holds the optimiser's moving average of
    its weights, not the last step's (Keras swaps them in when fit ends); the batched engine,
    which keeps no average, refuses it before anything trains."""
    from src import UserError
    from src.train.engines import check_engine_settings

    x, y = first_digits(sample_frames, 640)
    keras.utils.set_random_seed(0)
    params = {**default_params("cnn"), "ema_momentum": 0.9}
    model = build_model(params)
    fit.fit_model(model, params, (x, y), None, epochs=2, patience=1, augment="affine", seed=0,
                  verbose=0)  # fmt: skip
    averages = model.optimizer._model_variables_moving_average
    assert model.optimizer.use_ema and len(averages) == len(model.trainable_variables)
    for var, average in zip(model.trainable_variables, averages, strict=True):
        np.testing.assert_array_equal(np.asarray(var), np.asarray(average))
    with pytest.raises(UserError, match="ema_momentum"):
        check_engine_settings("batched", "float32", (("ema_momentum", 0.9),))


def test_weight_decay_shrinks_every_kernel_and_nothing_else():
    """`weight_decay`: the optimiser `compile_model` attaches shrinks each kernel by the rate x
    weight_decay of itself per step, apart from the gradient (a zero gradient moves nothing
    else), and leaves BatchNorm's scale and offset and the biases as they are."""
    keras.utils.set_random_seed(0)
    params = {**default_params("cnn"), "weight_decay": 0.5}
    model = build_model(params)
    fit.compile_model(model, params, steps_per_epoch=10, epochs=3)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    rate = float(np.asarray(optimizer.learning_rate))  # the schedule's first step
    rng = np.random.default_rng(0)
    for var in model.trainable_variables:  # no zeros (betas, biases): each change shows
        var.assign(rng.uniform(0.5, 1.5, var.shape).astype("float32"))
    before = {v.path: np.asarray(v).copy() for v in model.trainable_variables}
    optimizer.apply([keras.ops.zeros_like(v) for v in model.trainable_variables],
                    model.trainable_variables)  # fmt: skip
    kinds = Counter(var.name for var in model.trainable_variables)  # a path's last part
    for var in model.trainable_variables:
        start = before[var.path]
        expected = start * (1 - rate * 0.5) if var.name == "kernel" else start
        np.testing.assert_allclose(np.asarray(var), expected, rtol=1e-6, err_msg=var.path)
    assert kinds == {"kernel": 8, "gamma": 7, "beta": 7, "bias": 1}
    assert rate > 0
