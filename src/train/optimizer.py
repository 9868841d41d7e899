"""The optimiser and its learning-rate schedule, one definition for both engines.

`cosine`: one epoch of linear warm-up from a tenth of the rate, then cosine decay to zero
(Keras's `CosineDecay` with a warm-up). `exponential`: the rate times `DECAY` each epoch
(Deotte's 0.99757 kernels; Keras's `ExponentialDecay` with `staircase`). Both are written out in
ops (`rate_at`) so that the batched engine can trace them with each model's own step count.
`plateau`: a constant rate that `PLATEAU`'s rule halves when the monitored accuracy stops
improving (Keras's `ReduceLROnPlateau` in `model.fit`, the same rule per model on the host in
the batched engine).
"""

from __future__ import annotations

import math

import keras
from keras import ops

OPTIMIZERS = {
    "adam": lambda lr, **options: keras.optimizers.Adam(lr, **options),
    "rmsprop": lambda lr, **options: keras.optimizers.RMSprop(lr, **options),
    "sgd": lambda lr, **options: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **options),
}
PLATEAU = {"patience": 3, "factor": 0.5, "min_lr": 1e-5, "min_delta": 1e-4}
DECAY = 0.95  # the `exponential` schedule's factor an epoch


NO_DECAY = ("gamma", "beta", "bias")  # the variables weight decay leaves alone, by name


def make_optimizer(name: str, learning_rate, ema_momentum: float = 0.0,
                   weight_decay: float = 0.0):  # fmt: skip
    """The optimiser called `name` (the `optimizer` hyperparameter) at `learning_rate`, keeping
    a moving average of the weights with `ema_momentum` (0: none), which `model.fit` puts in
    the model when it ends, and shrinking every kernel by `weight_decay` x the rate each step
    (0: none; decoupled from the gradient, as AdamW)."""
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    optimizer = OPTIMIZERS[name](learning_rate, weight_decay=weight_decay or None, **ema)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))  # nothing, without decay
    return optimizer


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
    # `cond`, as CosineDecay has it: with `where` (both sides computed) TensorFlow's graph gave
    # rates a bit apart from CosineDecay's, and a deterministic run's later models changed.
    return ops.cond(
        step < steps,
        lambda: (peak - start) * (step / steps) + start,
        lambda: peak * (0.5 * (1.0 + ops.cos(pi * ((step - steps) / decay)))),
    )


def exponential(step, learning_rate: float, steps_per_epoch):
    """The `exponential` schedule's rate at optimiser step `step`: `DECAY` ** completed epochs
    (`ExponentialDecay(staircase=True)`'s float32 values)."""
    peak = ops.convert_to_tensor(learning_rate, "float32")
    epoch = ops.floor(ops.cast(step, "float32") / ops.cast(steps_per_epoch, "float32"))
    return peak * ops.power(ops.convert_to_tensor(DECAY, "float32"), epoch)


def rate_at(step, schedule: str, learning_rate: float, steps_per_epoch, epochs: int):
    """The rate of a stepped schedule (`cosine` or `exponential`) at `step`."""
    if schedule == "exponential":
        return exponential(step, learning_rate, steps_per_epoch)
    return warmup_cosine(step, learning_rate, steps_per_epoch, epochs)


@keras.saving.register_keras_serializable(package="digits")
class Stepped(keras.optimizers.schedules.LearningRateSchedule):
    """`rate_at` as a Keras schedule, for `model.fit`'s optimiser."""

    def __init__(self, schedule: str, learning_rate: float, steps_per_epoch: int, epochs: int):
        super().__init__()
        self.schedule, self.learning_rate = schedule, learning_rate
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs

    def __call__(self, step):
        return rate_at(step, self.schedule, self.learning_rate, self.steps_per_epoch, self.epochs)

    def get_config(self) -> dict:
        return {"schedule": self.schedule, "learning_rate": self.learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs}  # fmt: skip


def learning_rate(params: dict, steps_per_epoch: int, epochs: int):
    """What `model.fit`'s optimiser starts with: the constant rate under `plateau` (its
    callback lowers it), else the stepped schedule."""
    if params["schedule"] == "plateau":
        return params["learning_rate"]
    return Stepped(params["schedule"], params["learning_rate"], steps_per_epoch, epochs)
