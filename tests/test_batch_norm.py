"""The fused BatchNormalization (src/model/batch_norm.py) computes what Keras's own does."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.model.batch_norm import BatchNormalization
from src.model.cnn import build_model
from src.outputs.run_folder import save_model
from src.params import default_params


def twin_layers(shape, momentum=0.9, dtype="float32"):
    """Keras's layer and the fused one, built with the same weights, none of them trivial."""
    rng = np.random.default_rng(0)
    plain, fused = (
        keras.layers.BatchNormalization(momentum=momentum, dtype=dtype),
        BatchNormalization(momentum=momentum, dtype=dtype),
    )
    weights = [rng.uniform(0.5, 1.5, shape[-1]), rng.normal(size=shape[-1]),
               rng.normal(size=shape[-1]), rng.uniform(0.5, 2.0, shape[-1])]  # fmt: skip
    for layer in (plain, fused):
        layer.build(shape)
        layer.set_weights([w.astype("float32") for w in weights])
    return plain, fused


def one_training_call(layer, x):
    """The output, the gradients of a position-dependent loss (input, gamma, beta) and the
    moving statistics after one training call."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
        loss = tf.reduce_sum(out * tf.sin(out))
    grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return [out, *grads, layer.moving_mean.value, layer.moving_variance.value]


# (batch, height, width, channels): a conv layer's output; the default model's last one, 1x1
# with few values per channel, where the biased and unbiased variance differ most; and that
# layer for a last batch of one image, where the unbiased variance has no value.
@pytest.mark.parametrize("shape", [(6, 9, 7, 5), (8, 1, 1, 12), (1, 1, 1, 4)])
def test_training_matches_keras_output_gradients_and_moving_statistics(shape):
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, size=shape), tf.float32)
    plain, fused = twin_layers(shape)
    expected, got = one_training_call(plain, x), one_training_call(fused, x)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4)
    # Inference uses the moving statistics both layers now hold: Keras's own path.
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-5)


def test_mixed_precision_normalises_in_float32_as_keras_does():
    """Under mixed_bfloat16 both layers compute in float32 and hand back bfloat16."""
    shape = (6, 9, 7, 5)
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, size=shape), tf.bfloat16)
    plain, fused = twin_layers(shape, dtype="mixed_bfloat16")
    expected, got = one_training_call(plain, x), one_training_call(fused, x)
    assert got[0].dtype == expected[0].dtype == tf.bfloat16
    for a, b in zip(expected, got, strict=True):
        a, b = np.asarray(tf.cast(a, tf.float32)), np.asarray(tf.cast(b, tf.float32))
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=2e-2)  # bfloat16: 8 bits of mantissa


@pytest.mark.parametrize("policy, dtype", [("float32", tf.float32),
                                           ("mixed_bfloat16", tf.bfloat16)])  # fmt: skip
def test_the_fused_kernel_is_what_trains(policy, dtype):
    """The training graph holds TensorFlow's fused op, and not Keras's moments."""
    _, fused = twin_layers((4, 5, 5, 3), dtype=policy)
    graph = (
        tf.function(lambda x: fused(x, training=True))
        .get_concrete_function(tf.TensorSpec((4, 5, 5, 3), dtype))
        .graph
    )
    ops = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in ops and "Mean" not in ops


def test_the_default_model_trains_with_it_and_saves_keras_own_layer(tmp_path):
    model = build_model(default_params("cnn"))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 7 and all(type(layer) is BatchNormalization for layer in norms)
    for layer in norms:  # moving statistics that are not the initial ones
        layer.moving_mean.assign(np.linspace(-1, 1, layer.moving_mean.shape[0]))
    x = np.random.default_rng(2).uniform(0, 255, size=(3, 28, 28, 1)).astype("float32")
    save_model(tmp_path, model, {}, "fit.json", {}, {"test_proba": np.zeros(1)})
    saved = (tmp_path / "model.keras").read_bytes()
    assert b"digits>BatchNormalization" not in saved  # plain Keras loads it (tests/test_train.py)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    kinds = {type(layer) for layer in loaded.layers}
    assert keras.layers.BatchNormalization in kinds and BatchNormalization not in kinds
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
