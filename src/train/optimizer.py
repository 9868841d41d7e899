"""The optimiser and its learning-rate schedule, one definition for both engines.

`cosine`: one epoch of linear warm-up from a tenth of the rate, then cosine decay to zero
(Keras's `CosineDecay` with a warm-up, written out in ops so that the batched engine can trace it
with each model's own step count). `plateau`: a constant rate that `PLATEAU`'s rule halves when
the monitored accuracy stops improving (Keras's `ReduceLROnPlateau` in `model.fit`, the same rule
per model on the host in the batched engine).
"""

from __future__ import annotations

import math

import keras
from keras import ops

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(lr),
    "rmsprop": lambda lr: keras.optimizers.RMSprop(lr),
    "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
}
PLATEAU = {"patience": 3, "factor": 0.5, "min_lr": 1e-5, "min_delta": 1e-4}


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    """The optimiser called `name` (the `optimizer` hyperparameter) at `learning_rate`."""
    return OPTIMIZERS[name](learning_rate)


def warmup_cosine(step, learning_rate: float, steps_per_epoch, epochs: int):
    """The `cosine` schedule's rate at optimiser step `step` (0-based); `steps_per_epoch` may be
    traced. The ops follow `CosineDecay`'s order, so the rates are its float32 values."""
    peak = ops.convert_to_tensor(learning_rate, "float32")
    steps = ops.cast(steps_per_epoch, "float32")
    step = ops.cast(step, "float32")
    pi = ops.array(math.pi, "float32")
    if epochs == 1:  # nothing to warm up over
        step = ops.minimum(step, steps)
        return peak * (0.5 * (1.0 + ops.cos(pi * (step / steps))))
    start = ops.convert_to_tensor(learning_rate / 10, "float32")
    decay = steps * (epochs - 1)
    step = ops.minimum(step, decay + steps)
    warm = (peak - start) * (step / steps) + start
    cooled = peak * (0.5 * (1.0 + ops.cos(pi * ((step - steps) / decay))))
    return ops.where(step < steps, warm, cooled)


@keras.saving.register_keras_serializable(package="digits")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """`warmup_cosine` as a Keras schedule, for `model.fit`'s optimiser."""

    def __init__(self, learning_rate: float, steps_per_epoch: int, epochs: int):
        super().__init__()
        self.learning_rate, self.steps_per_epoch = learning_rate, steps_per_epoch
        self.epochs = epochs

    def __call__(self, step):
        return warmup_cosine(step, self.learning_rate, self.steps_per_epoch, self.epochs)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch,
                "epochs": self.epochs}  # fmt: skip


def learning_rate(params: dict, steps_per_epoch: int, epochs: int):
    """What `model.fit`'s optimiser starts with: the constant rate under `plateau` (its
    callback lowers it), else the `cosine` schedule."""
    if params["schedule"] == "plateau":
        return params["learning_rate"]
    return WarmupCosine(params["learning_rate"], steps_per_epoch, epochs)
