"""Compile and fit one model: optimiser, learning-rate schedule, callbacks."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from src.augment import make_train_data

# Each fold predicts with a new model, so Keras traces a new predict function per fold; TF's
# "triggered tf.function retracing" warning about that is expected here, not a problem. Only
# that message is dropped; TensorFlow's other warnings still show.
RETRACING = "triggered tf.function retracing"
tf.get_logger().addFilter(lambda record: RETRACING not in record.getMessage())

OPTIMIZERS = {
    "adam": lambda lr: keras.optimizers.Adam(lr),
    "rmsprop": lambda lr: keras.optimizers.RMSprop(lr),
    "sgd": lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
}


class LogLearningRate(keras.callbacks.Callback):
    """Record the learning rate each epoch ended with (history.json, the report's curves)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:  # History runs after this callback and keeps what is added here
            logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))


def configure_device() -> str:
    """Mixed float16 on a GPU (tensor cores, half the memory traffic), float32 on a CPU.

    On this project's CPU, mixed_bfloat16 measured 0.94x-1.08x of float32 (benchmarks/README.md):
    no clear gain, so CPUs stay in float32. Keras wraps the optimiser in a LossScaleOptimizer
    under mixed_float16, and the model's softmax layer computes in float32 either way.
    """
    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "GPU, mixed_float16"
    keras.mixed_precision.set_global_policy("float32")
    return "CPU, float32"


def configure_determinism(enabled: bool) -> None:
    """Deterministic kernels and tf.data ordering: reruns with one seed give identical bits."""
    if enabled:
        tf.config.experimental.enable_op_determinism()


def _learning_rate(params: dict, steps_per_epoch: int, epochs: int):
    """A constant rate for `plateau` (the callback lowers it), else a warm-up + cosine decay."""
    lr = params["learning_rate"]
    if params["schedule"] == "plateau":
        return lr
    warmup = steps_per_epoch if epochs > 1 else 0  # one epoch of linear warm-up
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warmup else lr,
        decay_steps=max(1, steps_per_epoch * epochs - warmup),
        warmup_target=lr if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: keras.Model, params: dict, steps_per_epoch: int, epochs: int) -> None:
    """Attach optimiser, loss and metrics (by keyword: positional metrics become loss_weights)."""
    optimizer = OPTIMIZERS[params["optimizer"]](_learning_rate(params, steps_per_epoch, epochs))
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def fit_model(
    model: keras.Model,
    params: dict,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    patience: int,
    augment: str,
    seed: int,
    callbacks: list | None = None,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Train on augmented `train` batches; stop early on `val` and keep its best epoch."""
    data, steps = make_train_data(*train, params, augment, seed)
    compile_model(model, params, steps, epochs)
    cbs = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True
        ),
        LogLearningRate(),
        *(callbacks or []),
    ]
    if params["schedule"] == "plateau":
        cbs.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy", patience=3, factor=0.5, min_lr=1e-5
            )
        )
    return model.fit(
        data,
        steps_per_epoch=steps,
        epochs=epochs,
        validation_data=val,
        batch_size=params["batch_size"],  # used for the validation pass
        callbacks=cbs,
        shuffle=False,  # the pipeline shuffles
        verbose=verbose,
    )
