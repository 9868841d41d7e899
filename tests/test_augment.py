"""Every augmentation path moves pixels within ImageDataGenerator's configured ranges.

A bright 3x3 dot is augmented 64 times through the real training-data path (the tf.data
backends, ImageDataGenerator, and `model`: the RandomWarp layer that augments inside the model
on a GPU or a non-TensorFlow backend); its centroid must move, and never further than the
configured rotation, zoom or shift allows. Elastic distortion is checked the same way.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from src.model.augment import clean_epoch
from src.model.augment.layers import SwitchOff, augmenting_model
from src.model.augment.tfdata import make_train_data
from src.model.augment.warp import RandomWarp, warp

CENTER = 13.5  # pixel-centre coordinates of a 28x28 image's middle
N = 64


def dot_images(row: int, col: int) -> np.ndarray:
    img = np.zeros((28, 28, 1), np.uint8)
    img[row - 1 : row + 2, col - 1 : col + 2] = 255
    return np.repeat(img[None], N, axis=0)


def augmented_centroids(backend: str, x: np.ndarray, **strengths) -> np.ndarray:
    """(N, 2) intensity centroids (row, col) of one augmented batch."""
    params = {"rotation_range": 0, "zoom_range": 0, "width_shift_range": 0,
              "height_shift_range": 0, "batch_size": N, **strengths}  # fmt: skip
    if backend == "model":
        batch = np.asarray(RandomWarp(params, seed=1)(x.astype("float32"), training=True))[..., 0]
    else:
        data, steps = make_train_data(x, np.zeros(N, np.int64), params, backend, seed=1)
        assert steps == 1
        batch = np.asarray(data[0][0] if backend == "idg" else next(iter(data))[0])[..., 0]
    assert batch.shape == (N, 28, 28)
    rows, cols = np.mgrid[0:28, 0:28]
    mass = batch.sum(axis=(1, 2))
    assert (mass > 0).all(), "the dot was pushed out of the image"
    return np.stack([(batch * rows).sum((1, 2)) / mass, (batch * cols).sum((1, 2)) / mass], 1)


BACKENDS = ["affine", "layers", "idg", "model"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_shifts_stay_within_range_and_on_their_axis(backend):
    x = dot_images(14, 14)
    c = augmented_centroids(backend, x, width_shift_range=0.1)
    dx, dy = c[:, 1] - 14, c[:, 0] - 14
    assert np.abs(dy).max() < 0.3  # height_shift_range is 0
    assert np.abs(dx).max() <= 0.1 * 28 + 0.3
    assert np.abs(dx).max() > 1.5  # and it does move
    c = augmented_centroids(backend, x, height_shift_range=0.2)
    assert np.abs(c[:, 1] - 14).max() < 0.3
    assert 2.5 < np.abs(c[:, 0] - 14).max() <= 0.2 * 28 + 0.3


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_stays_within_degrees(backend):
    x = dot_images(14, 22)  # on the horizontal axis, 8.5 px right of centre
    c = augmented_centroids(backend, x, rotation_range=10)
    angle = np.degrees(np.arctan2(c[:, 0] - CENTER, c[:, 1] - CENTER) - np.arctan2(0.5, 8.5))
    radius = np.hypot(c[:, 0] - CENTER, c[:, 1] - CENTER)
    assert np.abs(angle).max() <= 10 + 3
    assert np.abs(angle).max() > 5
    assert np.abs(radius - np.hypot(0.5, 8.5)).max() < 0.7


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoom_scales_within_range(backend):
    x = dot_images(14, 22)
    c = augmented_centroids(backend, x, zoom_range=0.2)
    scale = (c[:, 1] - CENTER) / (22 - CENTER)
    assert scale.min() >= 1 / 1.2 - 0.06 and scale.max() <= 1 / 0.8 + 0.06
    assert np.abs(scale - 1).max() > 0.08


@pytest.mark.parametrize("backend", ["affine", "layers", "idg", "none"])
def test_each_epoch_sees_new_transforms_or_none(backend):
    """repeat() keeps random ops drawing: epoch 2 differs from epoch 1 (except with none)."""
    x = dot_images(14, 14)
    params = {"rotation_range": 10, "zoom_range": 0.1, "width_shift_range": 0.1,
              "height_shift_range": 0.1, "batch_size": N}  # fmt: skip
    data, _ = make_train_data(x, np.zeros(N, np.int64), params, backend, seed=1)
    if backend == "idg":
        first, second = data[0][0], data[0][0]
    else:
        it = iter(data)
        first, second = next(it)[0].numpy(), next(it)[0].numpy()
    assert np.array_equal(first, second) == (backend == "none")


@pytest.mark.parametrize("backend", ["affine", "model"])
def test_elastic_distortion_moves_the_dot_a_few_pixels(backend):
    """alpha 34, sigma 4 (Simard et al.): displacements of about a pixel, a few at most."""
    x = dot_images(14, 14)
    c = augmented_centroids(backend, x, elastic_alpha=34.0, elastic_sigma=4.0)
    moved = np.hypot(c[:, 0] - 14, c[:, 1] - 14)
    assert moved.max() > 0.5  # it does distort
    assert moved.max() < 5.0  # but keeps the digit in place
    assert np.median(moved) < 2.5


def test_elastic_path_without_displacement_equals_the_affine_warp():
    """The elastic path samples the same affine grid as affine_transform when the field is 0."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 28, 28, 1)).astype("float32")
    u = rng.uniform(-1, 1, (8, 5)).astype("float32")
    params = {"rotation_range": 10, "zoom_range": 0.1, "width_shift_range": 0.1,
              "height_shift_range": 0.1}  # fmt: skip
    affine = np.asarray(warp(x, u, None, params))
    elastic = {**params, "elastic_alpha": 1e-9, "elastic_sigma": 4.0}
    sampled = np.asarray(warp(x, u, np.ones((8, 28, 28, 2), "float32"), elastic))
    np.testing.assert_allclose(sampled, affine, atol=1e-3)
    assert np.abs(affine - x).max() > 50  # and the warp did move pixels


def test_random_warp_is_the_identity_at_inference():
    x = dot_images(14, 20).astype("float32")
    layer = RandomWarp({"rotation_range": 10, "width_shift_range": 0.1}, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    assert not np.array_equal(np.asarray(layer(x, training=True)), x)


@pytest.mark.parametrize("backend", ["affine", "layers", "idg", "model"])
def test_the_last_clean_epochs_train_on_the_digits_as_they_are(backend):
    """`clean_epochs=2` of 5: every batch of epochs 1-3 is warped, every batch of epochs 4-5
    is the images exactly as they are; on every path a fit can take (`model`: the switched
    augmentation layer inside the model, turned off by the fit's callback)."""
    x = np.repeat(dot_images(14, 14)[:1], 2 * N, axis=0)  # 2 batches an epoch
    params = {"rotation_range": 10, "zoom_range": 0.1, "width_shift_range": 0.1,
              "height_shift_range": 0.1, "batch_size": N, "clean_epochs": 2}  # fmt: skip
    assert clean_epoch(params, 5) == 3 and clean_epoch(params, 1) == 0
    assert clean_epoch({**params, "clean_epochs": 0}, 5) is None
    warped = []
    if backend == "model":
        inputs = keras.Input((28, 28, 1))
        identity = keras.Model(inputs, keras.layers.Identity()(inputs))
        trainer = augmenting_model(identity, params, "affine", seed=1)
        switch = SwitchOff(trainer, clean_epoch(params, 5))
        for epoch in range(5):
            switch.on_epoch_begin(epoch)
            for _ in range(2):
                batch = np.asarray(trainer(x[:N].astype("float32"), training=True))
                warped.append(not np.array_equal(batch, x[:N]))
    else:
        data, steps = make_train_data(x, np.zeros(2 * N, np.int64), params, backend, 1, epochs=5)
        assert steps == 2
        batches = iter(data)
        for _ in range(5 * steps):
            batch = np.asarray(next(batches)[0])
            assert batch.shape == (N, 28, 28, 1)
            warped.append(not np.array_equal(batch, x[:N]))
    assert warped == [True] * 6 + [False] * 4
