"""Random warps of digit batches in backend-neutral Keras ops (TensorFlow, JAX or PyTorch).

One warp per image: ImageDataGenerator's rotation, zoom and shifts composed into one affine
matrix, plus an optional elastic distortion (Simard, Steinkraus & Platt, 2003: a random
displacement field, Gaussian-smoothed with `elastic_sigma` pixels and scaled by
`elastic_alpha`), sampled from the input in one bilinear interpolation.

The callers draw the randomness: `tfdata.py` with stateless TensorFlow draws inside `tf.data`
(CPU), `RandomWarp` with a Keras seed generator inside the model (GPU, or a backend
without `tf.data`). Both feed `warp`, so a digit is transformed the same way on either path.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from src.params import AUGMENT_KEYS

DRAWS = 5  # uniform numbers per image: angle, x zoom, y zoom, x shift, y shift


def uses_elastic(params: dict) -> bool:
    return bool(params.get("elastic_alpha"))


def affine_coefficients(u, params: dict, height: int, width: int):
    """(B, 8) projective transforms, as `keras.ops.image.affine_transform` reads them.

    From `u` (B, 5) uniform in [-1, 1]: angle in +-rotation_range degrees, independent x/y zoom
    in 1 +- zoom_range, shifts in +-width/height_shift_range of the image size. Each row maps an
    output pixel (x, y) to the input point it samples, (a0*x + a1*y + a2, b0*x + b1*y + b2),
    about the image centre.
    """
    angle = u[:, 0] * (params["rotation_range"] * math.pi / 180)
    zx = 1 + u[:, 1] * params["zoom_range"]
    zy = 1 + u[:, 2] * params["zoom_range"]
    tx = u[:, 3] * (params["width_shift_range"] * width)
    ty = u[:, 4] * (params["height_shift_range"] * height)
    cos, sin = ops.cos(angle), ops.sin(angle)
    a0, a1, b0, b1 = cos * zx, -sin * zy, sin * zx, cos * zy
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian over +-3 sigma."""
    radius = max(1, int(3 * sigma + 0.5))
    t = np.arange(-radius, radius + 1, dtype="float32")
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def elastic_displacement(noise, alpha: float, sigma: float):
    """Smooth `noise` (B, H, W, 2), uniform in [-1, 1], into a displacement field in pixels."""
    k = gaussian_kernel(sigma)
    channels = noise.shape[-1]
    along_y = np.tile(k.reshape(-1, 1, 1, 1), (1, 1, channels, 1))
    along_x = np.tile(k.reshape(1, -1, 1, 1), (1, 1, channels, 1))
    field = ops.depthwise_conv(noise, ops.convert_to_tensor(along_y), padding="same")
    field = ops.depthwise_conv(field, ops.convert_to_tensor(along_x), padding="same")
    return alpha * field


def warp(images, u, noise, params: dict):
    """Warp a float batch (B, H, W, 1) by the affine draws `u` and, if set, elastic `noise`.

    Without elastic distortion this is one `affine_transform`; with it, the affine sampling
    grid plus the displacement field is sampled once by `bilinear_sample`, so the image is
    still interpolated once. Black fills whatever is sampled from outside the image.
    """
    height, width = images.shape[1], images.shape[2]
    coeffs = affine_coefficients(u, params, height, width)
    if not uses_elastic(params):
        return ops.image.affine_transform(
            images, coeffs, interpolation="bilinear", fill_mode="constant", fill_value=0.0
        )
    dx_dy = elastic_displacement(noise, params["elastic_alpha"], params["elastic_sigma"])
    ys, xs = np.mgrid[0:height, 0:width].astype("float32")
    c = [ops.reshape(coeffs[:, i], (-1, 1, 1)) for i in range(6)]
    x_in = c[0] * xs + c[1] * ys + c[2] + dx_dy[..., 0]
    y_in = c[3] * xs + c[4] * ys + c[5] + dx_dy[..., 1]
    return bilinear_sample(images, x_in, y_in)


def bilinear_sample(images, x, y):
    """Sample each image (B, H, W, 1) at its own points x, y (B, H, W); black outside.

    `keras.ops.image.map_coordinates` would do this for one array, but its TensorFlow version
    needs the batch size known when the graph is built, which neither `tf.data` nor `fit` gives.
    """
    height, width = images.shape[1], images.shape[2]
    flat = ops.reshape(images, (-1,))
    first = ops.arange(ops.shape(images)[0]) * (height * width)  # offset of each image
    first = ops.reshape(first, (-1, 1, 1))
    x0, y0 = ops.floor(x), ops.floor(y)
    out = 0.0
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - ops.abs(x - xi)) * (1 - ops.abs(y - yi))
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        xi = ops.cast(ops.clip(xi, 0, width - 1), "int32")
        yi = ops.cast(ops.clip(yi, 0, height - 1), "int32")
        pixel = ops.take(flat, first + yi * width + xi)
        out = out + ops.where(inside, weight * pixel, 0.0)
    return out[..., None]


@keras.saving.register_keras_serializable(package="digits")
class RandomWarp(keras.layers.Layer):
    """`warp` with fresh random draws per batch, in training only (identity at inference).

    Placed in front of the model when augmentation runs on the accelerator: no input pipeline
    to keep the GPU fed, and the same layer works on every Keras backend.
    """

    def __init__(self, params: dict, seed: int | None = None, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)  # warp in float32 under mixed precision
        self.params = {k: params.get(k, 0.0) for k in AUGMENT_KEYS}
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        n = ops.shape(images)[0]
        u = keras.random.uniform((n, DRAWS), -1.0, 1.0, seed=self.generator)
        noise = None
        if uses_elastic(self.params):
            shape = (n, images.shape[1], images.shape[2], 2)
            noise = keras.random.uniform(shape, -1.0, 1.0, seed=self.generator)
        return warp(images, u, noise, self.params)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "params": self.params, "seed": self.seed}
