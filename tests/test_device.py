"""Device set-up: float32 on a CPU; on a GPU, mixed float16 with float32 probabilities out."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.model import build_model
from src.params import default_params
from src.train import augment_in_model, compile_model, configure_device


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_cpu_trains_in_float32(restore_policy):
    assert configure_device() == "CPU, float32"  # this machine has no GPU
    assert not augment_in_model()  # augmentation in the tf.data pipeline
    model = build_model(default_params("cnn"))
    assert all(layer.compute_dtype == "float32" for layer in model.layers)


def test_a_gpu_gets_mixed_float16_and_float32_probabilities(monkeypatch, restore_policy):
    real = tf.config.list_physical_devices
    monkeypatch.setattr(  # CI has no GPU: make TensorFlow report one, as a GPU machine does
        tf.config, "list_physical_devices",
        lambda kind=None: ["GPU:0"] if kind == "GPU" else real(kind),
    )  # fmt: skip
    assert configure_device() == "GPU, mixed_float16"
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
