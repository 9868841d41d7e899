"""Keras's BatchNormalization, trained with TensorFlow's fused kernel where it applies.

Keras 3 normalises a training batch with separate ops: the moments' reductions, then the scale
and shift, each a pass over the activations, and as many again for the gradient. TensorFlow's
`FusedBatchNormV3` (oneDNN's kernel on a CPU) does each direction in one kernel; on the CPU the
whole training step is measurably faster (benchmarks/README.md, "flops"). The arithmetic is
Keras's: the batch's own mean and biased variance normalise it, and the moving statistics are
updated with Keras's momentum from that same biased variance (the kernel reports the unbiased
one, which is corrected back), in float32 as Keras computes it under mixed precision.
Inference, the other backends (JAX, PyTorch), masks, renorm and activations other than rank 4
with channels last run Keras's own code.
Saved models hold Keras's own layer (`with_keras_batch_norm`), so plain Keras loads them
without this project's code.
"""

from __future__ import annotations

import keras

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"  # the only backend with the kernel
if ON_TENSORFLOW:
    import tensorflow as tf


@keras.saving.register_keras_serializable(package="digits")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, its training batches normalised by one fused kernel
    on TensorFlow."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        # In float32, as Keras normalises float16 and bfloat16 activations (mixed precision).
        x = tf.cast(inputs, "float32")
        # exponential_avg_factor=1: the kernel returns the batch's own statistics; the moving
        # ones are updated below, as Keras updates them.
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            x,
            self.gamma.value,
            self.beta.value,
            epsilon=self.epsilon,
            is_training=True,
            exponential_avg_factor=1.0,
        )
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
        variance = unbiased * ((count - 1.0) / count)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)

    def _fusable(self, inputs, mask) -> bool:
        """Whether the fused kernel computes what Keras's code would for these inputs."""
        return (
            ON_TENSORFLOW
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "float16", "bfloat16")
            and self.center
            and self.scale
            and not getattr(self, "renorm", False)  # in Keras 3.15, not 3.13
            and not self.synchronized
        )


def with_keras_batch_norm(model: keras.Model) -> keras.Model:
    """A new, uncompiled copy of `model` with the same weights and Keras's own
    BatchNormalization in place of this one: what the two compute in inference is the same."""
    ours = keras.saving.get_registered_name(BatchNormalization)
    keras_own = {"module": "keras.layers", "class_name": "BatchNormalization",
                 "registered_name": None}  # fmt: skip

    def swap(node):
        if isinstance(node, dict):
            if node.get("registered_name") == ours:
                node = {**node, **keras_own}
            return {key: swap(value) for key, value in node.items()}
        return [swap(value) for value in node] if isinstance(node, list) else node

    copy = type(model).from_config(swap(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy
