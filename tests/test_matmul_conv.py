"""Convolutions as matrix products (src/model/matmul_conv.py): Conv2D's numbers, to rounding."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from src.model.cnn import build_model
from src.model.matmul_conv import MatmulConv2D, with_matmul_convs
from src.params import default_params

# (kernel, strides, padding): the default model's three kinds, and shapes that stress the
# arithmetic: an even kernel, a stride that does not divide the size, unequal sides.
SETTINGS = [(3, 1, "valid"), (5, 2, "same"), (4, 1, "valid"), (4, 3, "same"),
            ((3, 5), (2, 1), "valid"), ((2, 3), (1, 2), "same")]  # fmt: skip


@pytest.mark.parametrize("kernel, strides, padding", SETTINGS)
@pytest.mark.parametrize("height", [12, 13])
def test_output_and_gradients_are_conv2d_own(kernel, strides, padding, height):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, height, 11, 3)), tf.float32)
    plain = keras.layers.Conv2D(5, kernel, strides=strides, padding=padding)
    mine = MatmulConv2D(5, kernel, strides=strides, padding=padding)
    plain.build(x.shape)
    mine.build(x.shape)
    mine.set_weights([w + 0.1 for w in plain.get_weights()])  # a bias that is not zero
    plain.set_weights(mine.get_weights())
    results = []
    for layer in (plain, mine):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x)
            loss = tf.reduce_sum(out * tf.sin(out))  # a gradient that differs per position
        results.append((out, *tape.gradient(loss, [x, *layer.trainable_weights])))
    assert results[0][0].shape == results[1][0].shape
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)


def test_a_model_copy_predicts_as_the_model_dropout_included_and_hands_its_weights_back():
    keras.utils.set_random_seed(3)
    model = build_model(default_params("cnn"))
    copy = with_matmul_convs(model)
    kinds = {type(layer).__name__ for layer in copy.layers}
    assert "MatmulConv2D" in kinds and "Conv2D" not in kinds
    x = np.random.default_rng(1).integers(0, 256, (8, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(copy(x), model(x), atol=1e-6)
    # Dropout draws from seed states the copy must share, or training would differ.
    np.testing.assert_allclose(copy(x, training=True), model(x, training=True), atol=1e-5)
    trained = [w * 0.5 for w in copy.get_weights()]
    copy.set_weights(trained)
    model.set_weights(copy.get_weights())
    np.testing.assert_allclose(model(x), copy(x), atol=1e-6)
