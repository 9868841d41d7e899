"""CNN builders: one `build_model(params)` for every architecture the pipeline trains.

`params` is the hyperparameter dict (see `params.py`): the search suggests it, the final k-fold
training reuses it unchanged, so what Optuna scored is exactly what ends up in the ensemble.
"""

from __future__ import annotations

import keras
from keras import layers

from src.model.batch_norm import BatchNormalization

IMAGE_SHAPE = (28, 28, 1)


def _conv_bn(x, filters: int, kernel: int, params: dict, strides: int = 1, padding="valid"):
    """Conv -> (BatchNorm) -> ReLU; the bias is redundant in front of BatchNorm."""
    bn = params["batch_norm"]
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=not bn)(x)
    if bn:
        # Default momentum 0.99 leaves the moving statistics near their initial values after the
        # few hundred steps a fold trains for, so inference would run at chance.
        x = BatchNormalization(momentum=params["bn_momentum"])(x)
    return layers.Activation("relu")(x)


def _seed_body(x, params: dict):
    """The write-up's 4-layer net: Conv 32@5, 64@5, 32@5 with 2x2 pooling, then 2 dense layers."""
    x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(params["dropout"])(x)
    x = layers.Flatten()(x)
    x = layers.Dense(params["dense_units"], activation="relu")(x)
    x = layers.Dropout(params["dropout"])(x)
    return layers.Dense(params["dense_units"] // 2, activation="relu")(x)


def _cnn_body(x, params: dict):
    """BatchNorm CNN that downsamples with strided 5x5 convs instead of pooling.

    28 -> 26 -> 24 -> 12 (stride 2) -> 10 -> 8 -> 4 (stride 2) -> 1 (4x4 valid conv): the shape of
    the strongest public Digit Recognizer ensembles, with widths and kernels left to the search.
    """
    width, k = params["filters"], params["kernel_size"]
    for block in range(2):
        f = width * 2**block
        x = _conv_bn(x, f, k, params)
        x = _conv_bn(x, f, k, params)
        x = _conv_bn(x, f, 5, params, strides=2, padding="same")
        x = layers.Dropout(params["dropout"])(x)
    x = _conv_bn(x, width * 4, x.shape[1], params)  # collapse what is left to 1x1
    x = layers.Flatten()(x)
    x = layers.Dropout(params["dropout"])(x)
    if params["dense_units"]:
        x = layers.Dense(params["dense_units"], activation="relu")(x)
        x = layers.Dropout(params["dropout"])(x)
    return x


ARCHITECTURES = {"seed": _seed_body, "cnn": _cnn_body}


def build_model(params: dict, num_classes: int = 10) -> keras.Model:
    """Return an uncompiled model mapping raw 0..255 pixels (28x28x1) to class probabilities."""
    inputs = keras.Input(IMAGE_SHAPE)
    x = layers.Rescaling(1 / 255)(inputs)  # raw pixels in: no preprocessing to forget at predict
    x = ARCHITECTURES[params["model"]](x, params)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=params["model"])
