"""Augmentation in a `tf.data` pipeline (TensorFlow on a CPU), three backends.

- `layers`: Keras preprocessing layers mapped over batches in a `tf.data` pipeline, so the
  transforms run in TensorFlow's thread pool, overlapped with the training step by `prefetch`.
- `idg`: Keras's legacy `ImageDataGenerator` (NumPy/SciPy, one image at a time), the backend
  most public notebooks use; kept to compare against and for exact parity with them.
- `affine`: the same four transforms composed into one affine matrix per image and applied in
  a single bilinear resampling inside `tf.data` (`warp.warp`, with elastic distortion when
  `elastic_alpha` is set), with stateless random draws keyed on the batch index. One
  interpolation instead of the layers' three keeps strokes as sharp as ImageDataGenerator's,
  and the draws are reproducible however many threads run the map.

All read the table's augmentation rows (`src.params.AUGMENT_KEYS`) from the hyperparameter dict.
"""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import tensorflow as tf

from src.model.augment import clean_epoch
from src.model.augment.layers import preprocessing_layers
from src.model.augment.warp import DRAWS, uses_elastic, warp

PREFETCH = 16  # batches prepared ahead of the training step (fewer measured slower)


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


def random_warp(images, step, params: dict, seed: int):
    """`warp.warp` with stateless draws keyed on (seed, batch index): the same batch gets the
    same transforms however many threads run the map."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    n = tf.shape(images)[0]
    u = tf.random.stateless_uniform((n, DRAWS), seed=key, minval=-1.0, maxval=1.0)
    noise = None
    if uses_elastic(params):
        shape = (n, images.shape[1], images.shape[2], 2)
        noise_key = key + [0, 1 << 40]  # a stream apart from the affine draws'
        noise = tf.random.stateless_uniform(shape, seed=noise_key, minval=-1.0, maxval=1.0)
    return warp(images, u, noise, params)


def make_train_data(x: np.ndarray, y: np.ndarray, params: dict, backend: str, seed: int,
                    epochs: int | None = None):  # fmt: skip
    """Shuffled, augmented, endless training batches and the number of steps in one epoch;
    given the fit's `epochs`, the batches of its last `clean_epochs` come unwarped."""
    batch = params["batch_size"]
    steps = math.ceil(len(x) / batch)
    first = None if epochs is None else clean_epoch(params, epochs)
    clean_from = None if first is None else first * steps  # the first unwarped batch
    if backend == "idg":
        flow = build_idg(params).flow(x.astype("float32"), y, batch_size=batch, seed=seed)
        if clean_from is None:
            return flow, steps
        plain = tf.keras.preprocessing.image.ImageDataGenerator().flow(
            x.astype("float32"), y, batch_size=batch, seed=seed
        )
        return ((next(flow) if step < clean_from else next(plain))
                for step in itertools.count()), steps  # fmt: skip
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    # repeat() before batch: one endless stream, so random ops keep drawing new transforms
    # each epoch instead of replaying the first epoch's (a known tf.data seeding pitfall).
    ds = ds.shuffle(len(x), seed=seed).repeat().batch(batch)
    ds = ds.map(lambda a, b: (tf.cast(a, "float32"), b))
    if backend == "layers":
        layers = preprocessing_layers(params, seed)
        warped = lambda step, images: layers(images, training=True)  # noqa: E731
        # One call at a time: parallel calls read the layers' seed state before either advances
        # it, so two batches could get the same transforms (tests/test_augment.py caught it).
        parallel = None
    elif backend == "affine":
        warped = lambda step, images: random_warp(images, step, params, seed)  # noqa: E731
        parallel = os.cpu_count() or 1
    if backend in ("layers", "affine"):

        def augment(step, batch):
            images, labels = batch
            if clean_from is None:
                return warped(step, images), labels
            return tf.cond(step < clean_from, lambda: warped(step, images), lambda: images), labels

        ds = ds.enumerate().map(augment, num_parallel_calls=parallel)
    return ds.prefetch(PREFETCH).with_options(pipeline_options()), steps


def pipeline_options() -> tf.data.Options:
    """Fixed parallelism and prefetch, autotuning off.

    The autotuner's model thread holds up the iterator's destruction when model.fit returns, in
    some fits for a good part of a short fold's time (py-spy: ~RootDataset::Iterator waiting on
    that thread; docs/experiments.md, "The fit stall").
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options
