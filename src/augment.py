"""Training-time augmentation with ImageDataGenerator's parameters, behind two backends.

- `layers`: Keras preprocessing layers mapped over batches in a `tf.data` pipeline, so the
  transforms run in TensorFlow's thread pool, overlapped with the training step by `prefetch`.
- `idg`: Keras's legacy `ImageDataGenerator` (NumPy/SciPy, one image at a time), the backend
  most public notebooks use; kept to compare against and for exact parity with them.
- `affine`: the same four transforms composed into one affine matrix per image and applied in
  a single bilinear resampling (`keras.ops.image.affine_transform`) inside `tf.data`, with
  stateless random draws keyed on the batch index. One interpolation instead of the layers'
  three keeps strokes as sharp as ImageDataGenerator's, and the draws are reproducible however
  many threads run the map.

Both read the same four keys from the hyperparameter dict: `rotation_range` (degrees),
`zoom_range`, `width_shift_range`, `height_shift_range` (fractions of the image size).
Validation and test data are never augmented.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf

PREFETCH = 16  # batches prepared ahead of the training step (measured: 4 was slower)


def build_augmenter(params: dict, seed: int | None = None) -> keras.Sequential:
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


def build_idg(params: dict):
    """Keras's own ImageDataGenerator (reachable in Keras 3 only through `tf.keras`)."""
    return tf.keras.preprocessing.image.ImageDataGenerator(
        rotation_range=params["rotation_range"],
        zoom_range=params["zoom_range"],
        # Keras's ImageDataGenerator shifts vertically for width_shift_range and vice versa
        # (keras-team/keras#17398, still so in Keras 3.15; tests/test_augment.py measures it):
        # swap them so the documented meaning holds.
        width_shift_range=params["height_shift_range"],
        height_shift_range=params["width_shift_range"],
        fill_mode="constant",
        cval=0.0,
    )


def random_affine(images, step, params: dict, seed: int):
    """Rotate, zoom and shift each image of a float batch (B, H, W, C) by one resampling.

    Ranges as ImageDataGenerator's: angle in +-rotation_range degrees, independent x/y zoom in
    1 +- zoom_range, shifts in +-width/height_shift_range of the image size. The matrix maps each
    output pixel to where it samples the input, about the image centre.
    """
    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    u = tf.random.stateless_uniform((n, 5), seed=key, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (params["rotation_range"] * math.pi / 180)
    zx = 1 + u[:, 1] * params["zoom_range"]
    zy = 1 + u[:, 2] * params["zoom_range"]
    tx = u[:, 3] * params["width_shift_range"] * w
    ty = u[:, 4] * params["height_shift_range"] * h
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1, b0, b1 = cos * zx, -sin * zy, sin * zx, cos * zy
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = tf.zeros_like(a0)
    transform = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return keras.ops.image.affine_transform(
        images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0.0
    )


def make_train_data(x: np.ndarray, y: np.ndarray, params: dict, backend: str, seed: int):
    """Shuffled, augmented, endless training batches and the number of steps in one epoch."""
    batch = params["batch_size"]
    steps = math.ceil(len(x) / batch)
    if backend == "idg":
        return build_idg(params).flow(x.astype("float32"), y, batch_size=batch, seed=seed), steps
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    # repeat() before batch: one endless stream, so random ops keep drawing new transforms
    # each epoch instead of replaying the first epoch's (a known tf.data seeding pitfall).
    ds = ds.shuffle(len(x), seed=seed).repeat().batch(batch)
    ds = ds.map(lambda a, b: (tf.cast(a, "float32"), b))
    if backend == "layers":
        augment = build_augmenter(params, seed)
        # One call at a time: parallel calls read the layers' seed state before either advances
        # it, so two batches could get the same transforms (tests/test_augment.py caught it).
        ds = ds.map(lambda a, b: (augment(a, training=True), b))
    elif backend == "affine":
        ds = ds.enumerate().map(
            lambda step, ab: (random_affine(ab[0], step, params, seed), ab[1]),
            num_parallel_calls=os.cpu_count() or 1,
        )
    return ds.prefetch(PREFETCH).with_options(pipeline_options()), steps


def pipeline_options() -> tf.data.Options:
    """Fixed parallelism and prefetch, autotuning off.

    The autotuner's model thread holds up the iterator's destruction when model.fit returns, in
    some fits by 11-40 s (py-spy: ~RootDataset::Iterator waiting on that thread), a third of a
    short fold's time; `benchmarks/fit_stall.py` measures it.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
