"""Convolutions as matrix products, for training many models as one vmapped program.

`jax.vmap` over models whose convolution kernels differ turns each convolution into a grouped
convolution (one group per model), and its gradient into grouped and batch-grouped
convolutions: kernels GPUs run far below their speed (jax-ml/jax#13800). Written as shifted
slices of the input (im2col) times the kernel reshaped to a matrix, the same convolution
becomes slices XLA fuses and one matrix product, which vmap turns into one batched GEMM.

`MatmulConv2D` is Keras's `Conv2D` with that `convolution_op`: the same variables, shapes and
initial values, so weights move between the two unchanged. `with_matmul_convs` copies a model
with every `Conv2D` replaced; the engine trains the copy and saves the plain model.
"""

from __future__ import annotations

import keras
from keras import layers, ops


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's and XLA's "same": the output is ceil(size / stride), the odd pixel last."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MatmulConv2D(layers.Conv2D):
    """`Conv2D` computed as patches of the input times the kernel as a matrix."""

    def convolution_op(self, inputs, kernel):
        plain = (self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)
                 and self.groups == 1)  # fmt: skip
        if not plain:
            return super().convolution_op(inputs, kernel)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        if self.padding == "same":
            top, bottom = _same_padding(inputs.shape[1], kh, sh)
            left, right = _same_padding(inputs.shape[2], kw, sw)
            inputs = ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]])
        h, w, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        # Patch feature (i, j, c) is at (i * kw + j) * channels + c: the kernel's row-major order.
        patches = ops.concatenate(
            [inputs[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
             for i in range(kh) for j in range(kw)],
            axis=-1,
        )  # fmt: skip
        return ops.matmul(patches, ops.reshape(kernel, (kh * kw * channels, self.filters)))


def with_matmul_convs(model: keras.Model) -> keras.Model:
    """A copy of `model` computing every `Conv2D` as `MatmulConv2D`, its variables copies of
    `model`'s, the dropout layers' seed states included (the same variables in the same order:
    `set_weights` moves trained weights back)."""

    def swap(layer):
        if type(layer) is layers.Conv2D:
            return MatmulConv2D.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=swap)
    for mine, theirs in zip(copy.variables, model.variables, strict=True):
        mine.assign(theirs)
    return copy
