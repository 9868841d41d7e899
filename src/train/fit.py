"""Compile and fit one model with Keras: loss, optimiser and schedule, callbacks, where to
augment (`src/train/device.py` decides: in the model or in a `tf.data` pipeline)."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from src.model.augment import clean_epoch
from src.model.augment.layers import SwitchOff, augmenting_model
from src.train.device import augment_in_model
from src.train.ensemble import PREDICT_BATCH
from src.train.optimizer import PLATEAU, learning_rate, make_optimizer


def crossentropy(labels, proba, smoothing: float = 0.0):
    """Per-row cross-entropy of probabilities against class indices, the targets smoothed
    towards uniform by `smoothing` ((1 - s) one-hot + s / classes): both engines' loss."""
    loss = keras.losses.sparse_categorical_crossentropy(labels, proba)
    if not smoothing:
        return loss
    log_proba = ops.log(ops.clip(proba, keras.config.epsilon(), 1.0))
    return (1 - smoothing) * loss - smoothing * ops.mean(log_proba, axis=-1)


@keras.saving.register_keras_serializable(package="digits")
class SmoothedCrossentropy(keras.losses.Loss):
    """`crossentropy` with label smoothing, as a Keras loss for `compile` (registered, so a
    compiled model's config names it; the saved model.keras holds no loss: run_folder.py)."""

    def __init__(self, smoothing: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        return crossentropy(y_true, y_pred, self.smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}


def training_loss(params: dict):
    """The loss `compile_model` attaches: Keras's own without label smoothing."""
    smoothing = params["label_smoothing"]
    return SmoothedCrossentropy(smoothing) if smoothing else "sparse_categorical_crossentropy"


class LogLearningRate(keras.callbacks.Callback):
    """Record the learning rate each epoch ended with (history.json, the report's curves)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:  # History runs after this callback and keeps what is added here
            logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, params: dict, steps_per_epoch: int, epochs: int) -> None:
    """Attach optimiser, loss and metrics (by keyword: positional metrics become loss_weights)."""
    rate = learning_rate(params, steps_per_epoch, epochs)
    model.compile(
        optimizer=make_optimizer(
            params["optimizer"], rate, params["ema_momentum"], params["weight_decay"]
        ),
        loss=training_loss(params),
        metrics=["accuracy"],
    )


def fit_model(
    model: keras.Model,
    params: dict,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    *,
    epochs: int,
    patience: int,
    augment: str,
    seed: int,
    callbacks: list | None = None,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Train on augmented `train` batches; stop early on `val` and keep its best epoch.

    Without `val` (a full fit), all `epochs` run and the last weights are kept.
    """
    cbs = [LogLearningRate(), *(callbacks or [])]
    first_clean = clean_epoch(params, epochs)
    if augment_in_model():  # arrays in memory: Keras batches and shuffles them
        trainer = augmenting_model(model, params, augment, seed)
        if first_clean is not None and trainer is not model:
            cbs.append(SwitchOff(trainer, first_clean))
        x, y = train
        data = {"x": x.astype("float32"), "y": y, "batch_size": params["batch_size"],
                "shuffle": True}  # fmt: skip
        steps = math.ceil(len(x) / params["batch_size"])
    else:
        from src.model.augment.tfdata import make_train_data  # tf.data: TensorFlow only

        trainer = model
        dataset, steps = make_train_data(*train, params, augment, seed, epochs)
        data = {"x": dataset, "steps_per_epoch": steps, "shuffle": False}  # the pipeline shuffles
    compile_model(trainer, params, steps, epochs)
    if val is not None:  # a full fit has no held-out rows: it trains every epoch
        cbs.insert(
            0,
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            ),
        )
    if params["schedule"] == "plateau":
        cbs.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="accuracy" if val is None else "val_accuracy", **PLATEAU
            )
        )
    return trainer.fit(
        **data,
        epochs=epochs,
        validation_data=val,
        # Inference-size batches for the per-epoch validation pass: about half its time at the
        # training batch size (BatchNorm uses its moving statistics there: same result).
        validation_batch_size=PREDICT_BATCH,
        callbacks=cbs,
        verbose=verbose,
    )
