"""The model training sees: the network behind a training-only augmentation layer (both share
the network's weights), and Keras's own preprocessing layers as an augmentation backend."""

from __future__ import annotations

import keras

from src import UserError
from src.model.augment.warp import RandomWarp


def preprocessing_layers(params: dict, seed: int | None = None) -> keras.Sequential:
    """Preprocessing layers equivalent to ImageDataGenerator(rotation, zoom, shifts)."""
    rot, zoom = params["rotation_range"], params["zoom_range"]
    dx, dy = params["width_shift_range"], params["height_shift_range"]
    fill = {"fill_mode": "constant", "fill_value": 0.0}  # background is black: pad with black
    steps = []
    if rot:
        steps.append(keras.layers.RandomRotation(rot / 360, seed=seed, **fill))  # factor: turns
    if zoom:
        steps.append(keras.layers.RandomZoom((-zoom, zoom), (-zoom, zoom), seed=seed, **fill))
    if dx or dy:
        steps.append(keras.layers.RandomTranslation(dy, dx, seed=seed, **fill))
    return keras.Sequential(steps, name="augment")


def check_augment(augment: str, in_model: bool) -> None:
    """Refuse, with the flag to use instead, an augmentation a run cannot apply. Inside the
    model (a GPU, Keras off TensorFlow, the batched engine) there is `affine`, `none`, and
    `layers` on TensorFlow; a TensorFlow CPU run's tf.data pipeline has every backend."""
    if not in_model or augment in ("affine", "none"):
        return
    if augment == "layers" and keras.backend.backend() == "tensorflow":
        return
    # ImageDataGenerator is NumPy on the host; Keras's preprocessing layers inside a JAX model
    # are many times slower a step than RandomWarp (docs/experiments.md, "Engines on a GPU").
    needs = "TensorFlow on a CPU" if augment == "idg" else "the TensorFlow backend"
    raise UserError(f"--augment {augment} needs {needs}; use --augment affine")


def augmenting_model(model: keras.Model, params: dict, augment: str, seed: int) -> keras.Model:
    """`model` behind a training-only augmentation layer; both share the same weights. With
    `clean_epochs`, the layer is a `Switched` one that the fit turns off for the last epochs."""
    if augment == "none":
        return model
    check_augment(augment, in_model=True)
    layer = RandomWarp(params, seed) if augment == "affine" else preprocessing_layers(params, seed)
    if params.get("clean_epochs"):
        layer = Switched(layer)
    return keras.Sequential([keras.Input(model.input_shape[1:]), layer, model], name="trainer")


class Switched(keras.layers.Layer):
    """An augmentation layer and a switch: `on` = 1 trains on its warped images, 0 on the
    images as they are (the last `clean_epochs`). A variable, so that a compiled step reads it
    (Keras's fit: `SwitchOff`; the batched engine: each model's copy in its state)."""

    def __init__(self, augment: keras.layers.Layer, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)  # raw pixels in, as RandomWarp takes them
        self.augment = augment
        self.on = self.add_weight(shape=(), initializer="ones", trainable=False, name="on")

    def call(self, images, training=None):
        if not training:
            return images
        # 1 * warped + 0 * images is the warped batch to the bit, and the other way round.
        return self.on * self.augment(images, training=True) + (1 - self.on) * images

    def compute_output_shape(self, input_shape):
        return input_shape


class SwitchOff(keras.callbacks.Callback):
    """Turn a trainer's `Switched` augmentation off from epoch `first` (from 0) on."""

    def __init__(self, trainer: keras.Model, first: int):
        super().__init__()
        self.switches = [layer for layer in trainer.layers if isinstance(layer, Switched)]
        self.first = first

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for layer in self.switches:
            layer.on.assign(0.0 if epoch >= self.first else 1.0)
