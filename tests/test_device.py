"""Device set-up: the dtype policy per device and engine, and what mixed precision keeps in
float32 (the probabilities out)."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.model.cnn import build_model
from src.params import default_params
from src.train import device
from src.train.device import augment_in_model, configure_device
from src.train.fit import compile_model


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_trains_in_float32_unless_it_has_amx(restore_policy, monkeypatch):
    monkeypatch.setattr(device, "cpu_has_amx", lambda: False)
    assert configure_device() == ("float32", "CPU, float32 (CPU without AMX: bfloat16 measured"
                                  " no faster)")  # fmt: skip
    assert not augment_in_model()  # augmentation in the tf.data pipeline
    model = build_model(default_params("cnn"))
    assert all(layer.compute_dtype == "float32" for layer in model.layers)
    monkeypatch.setattr(device, "cpu_has_amx", lambda: True)
    assert configure_device()[0] == "mixed_bfloat16"
    assert configure_device("float32")[1] == "CPU, float32 (--precision)"  # asked for: obeyed


def fake_gpu(monkeypatch):
    real = tf.config.list_physical_devices
    monkeypatch.setattr(  # CI has no GPU: make TensorFlow report one, as a GPU machine does
        tf.config, "list_physical_devices",
        lambda kind=None: ["GPU:0"] if kind == "GPU" else real(kind),
    )  # fmt: skip


def test_a_gpu_trains_model_fit_in_float32_and_the_batched_engine_in_bfloat16(
    monkeypatch, restore_policy
):
    fake_gpu(monkeypatch)
    monkeypatch.setattr(device, "gpu_compute_capability", lambda: (9, 0))  # an H100
    assert configure_device() == ("float32", "GPU, float32 (GPU, model.fit: mixed precision"
                                  " measured slower)")  # fmt: skip
    assert configure_device(engine="batched") == (
        "mixed_bfloat16",
        "GPU, mixed_bfloat16 (GPU, batched engine: bfloat16 measured faster)",
    )
    assert configure_device("float32", engine="batched")[0] == "float32"  # asked for: obeyed


@pytest.mark.parametrize("capability", [(7, 5), (6, 0), None])  # T4, P100, not reported
def test_a_gpu_without_bfloat16_units_trains_the_batched_engine_in_float32(
    monkeypatch, restore_policy, capability
):
    fake_gpu(monkeypatch)
    monkeypatch.setattr(device, "gpu_compute_capability", lambda: capability)
    assert configure_device(engine="batched") == (
        "float32", "GPU, float32 (GPU, batched engine: no bfloat16 units known on this GPU)"
    )  # fmt: skip
    assert configure_device("mixed_bfloat16", engine="batched")[0] == "mixed_bfloat16"


def test_compute_capabilities_read_as_each_backend_reports_them():
    assert device._capability((8, 6)) == (8, 6)  # TensorFlow's device details
    assert device._capability("12.0") == (12, 0)  # JAX's device attribute
    assert device._capability("gfx90a") is None  # an AMD GPU under JAX
    assert device._capability(None) is None
    assert device.gpu_compute_capability() is None  # this machine's CPU


def test_mixed_float16_on_a_gpu_keeps_float32_probabilities(monkeypatch, restore_policy):
    fake_gpu(monkeypatch)
    assert configure_device("mixed_float16")[1] == "GPU, mixed_float16 (--precision)"
    assert augment_in_model()  # the GPU warps its own batches: no CPU pipeline to wait for
    params = default_params("cnn")
    model = build_model(params)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(c.compute_dtype == "float16" and c.dtype == "float32" for c in convs)
    compile_model(model, params, steps_per_epoch=1, epochs=1)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    proba = model.predict(np.zeros((3, 28, 28, 1), "float32"), verbose=0)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_every_model_the_sequential_engine_trains_computes_in_the_chosen_precision(
    restore_policy,
):
    """The policy reaches the second model too: the engine resets Keras before each model,
    which on its own puts the policy back to float32 (and a run in "mixed_bfloat16" would
    train in float32 while saying otherwise)."""
    from src.config import ROOT
    from src.data.load import load_digits
    from src.train.engine import Job
    from src.train.sequential import SequentialEngine

    configure_device("mixed_bfloat16")
    data = load_digits(ROOT / "input" / "sample")
    data.x_train, data.y_train = data.x_train[:128], data.y_train[:128]
    engine = SequentialEngine(default_params("cnn"), data, epochs=1, patience=1, augment="none",
                              verbose=0, predict_test=False)  # fmt: skip
    done = []
    rows = np.arange(128)
    engine.train([Job("full", 1, rows, None, 1), Job("full", 2, rows, None, 2)],
                 done.append)  # fmt: skip
    for trained in done:
        convs = [layer for layer in trained.model.layers
                 if isinstance(layer, keras.layers.Conv2D)]  # fmt: skip
        assert convs and all(c.compute_dtype == "bfloat16" for c in convs)
        assert np.isfinite(trained.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_a_jax_older_than_the_batched_engines_trains_sequentially_and_says_why(monkeypatch):
    """Kaggle's notebook image has such a JAX (requirements-min.txt): on its GPU `auto` picks
    the sequential engine (on TensorFlow, as the notebook's script chooses; here on a GPU
    as this process's backend reports one), whose engine line says why."""
    from src.train import engines

    monkeypatch.setattr(engines, "backend_has_gpu", lambda: True)
    monkeypatch.setattr(device, "accelerator", lambda: "GPU")
    monkeypatch.setattr(engines, "jax_too_old", lambda: "0.7.2")
    assert engines.resolve_engine("auto") == "sequential"
    engine = engines.make_engine("auto", default_params("cnn"), None, epochs=1, patience=1,
                                 augment="none")  # fmt: skip
    assert engine.describe([None]) == (
        "sequential, 1 model one after another (JAX 0.7.2 is"
        " older than the batched engine's 0.10.2)"
    )
    monkeypatch.setattr(engines, "jax_too_old", lambda: None)
    assert engines.resolve_engine("auto") == "batched"


def test_engine_batched_is_refused_on_a_jax_too_old_for_it():
    """This environment's real JAX, in a Keras-on-JAX process: refused in one line where it is
    older than the engine supports (the oldest-versions run), taken where it is not."""
    from importlib.metadata import version

    from src.config import ROOT
    from src.train import BATCHED_JAX

    code = ("from src import UserError\nfrom src.train.engines import resolve_engine\n"
            "try:\n    print(resolve_engine('batched'))\n"
            "except UserError as e:\n    print(f'refused: {e}')\n")  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    jax = version("jax")
    if tuple(int(n) for n in jax.split(".")[:3]) < BATCHED_JAX:
        assert done.stdout.strip() == (
            f"refused: --engine batched: needs JAX 0.10.2 or newer, this is {jax}; upgrade"
            " JAX, or use --engine sequential"
        )
    else:
        assert done.stdout.strip() == "batched"


@pytest.mark.parametrize(
    "jax_version, too_old",
    [("0.7.2", True), ("0.10.1", True), ("0.10.2", False), ("0.11.0", False)],
)
def test_the_batched_engines_jax_is_compared_as_numbers(monkeypatch, jax_version, too_old):
    import jax

    from src.train.engines import jax_too_old

    monkeypatch.setattr(jax, "__version__", jax_version)
    assert jax_too_old() == (jax_version if too_old else None)
