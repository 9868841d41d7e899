"""Compile and fit one model: optimiser, learning-rate schedule, callbacks, where to augment.

Keras 3 runs this on TensorFlow (the default), JAX or PyTorch (`KERAS_BACKEND`). On a CPU with
TensorFlow, augmentation runs in a `tf.data` pipeline overlapped with training
(src/augment/tfdata.py); on a GPU, or on another backend, it runs as the model's first layer
(`RandomWarp`, src/augment/warp.py), on the accelerator, fed from arrays in memory.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from src.augment.layers import augmenting_model
from src.ensemble import PREDICT_BATCH
from src.errors import UserError

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

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


def accelerator() -> str:
    """The GPU the Keras backend trains on ("" on a CPU)."""
    if BACKEND == "tensorflow":
        return "GPU" if tf.config.list_physical_devices("GPU") else ""
    if BACKEND == "jax":
        import jax

        return next((d.device_kind for d in jax.devices() if d.platform == "gpu"), "")
    if BACKEND == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    return ""


def gpu_compute_capability() -> tuple[int, int] | None:
    """The NVIDIA GPU's compute capability, e.g. (8, 0); None on a CPU or where the backend
    does not report one (an AMD GPU, PyTorch)."""
    if BACKEND == "tensorflow":
        gpus = tf.config.list_physical_devices("GPU")
        found = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        return _capability(found.get("compute_capability"))
    if BACKEND == "jax":
        import jax

        gpu = next((d for d in jax.devices() if d.platform == "gpu"), None)
        return _capability(getattr(gpu, "compute_capability", None))
    return None


def _capability(reported) -> tuple[int, int] | None:
    """(major, minor) from TensorFlow's (8, 0) or JAX's "8.0"; None from anything else."""
    parts = reported.split(".") if isinstance(reported, str) else reported
    try:
        major, minor = (int(part) for part in parts)
    except (TypeError, ValueError):
        return None
    return major, minor


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bfloat16 tiles (Linux's `amx_bf16` flag)."""
    try:
        return " amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def choose_precision(requested: str, engine: str = "sequential") -> tuple[str, str]:
    """(Keras dtype policy, why): the policy measured fastest here for `engine`, or the one
    asked for.

    Measurements behind the choices: benchmarks/README.md, "Precision", "Engines on a GPU" and
    "Model compute efficiency", and the GPU issue's probe of the batched program.
    """
    if requested != "auto":
        return requested, "--precision"
    if accelerator():
        if engine != "batched":
            return "float32", "GPU, model.fit: mixed precision measured slower"
        # NVIDIA computes bfloat16 in hardware from compute capability 8.0 (Ampere) on; older
        # cards (Kaggle's T4 and P100) and unknown ones emulate it, through float32.
        if (gpu_compute_capability() or (0, 0)) < (8, 0):
            return "float32", "GPU, batched engine: no bfloat16 units known on this GPU"
        # accuracy: float32's (benchmarks/README.md, "Precision")
        return "mixed_bfloat16", "GPU, batched engine: bfloat16 measured faster"
    if cpu_has_amx():
        return "mixed_bfloat16", "CPU with AMX bfloat16 tiles"
    return "float32", "CPU without AMX: bfloat16 measured no faster"


def configure_device(requested: str = "auto", engine: str = "sequential") -> tuple[str, str]:
    """Set Keras's global dtype policy; returns (policy, a line saying where and why).

    The model's softmax layer computes in float32 under every policy; Keras wraps the optimiser
    in a LossScaleOptimizer under mixed_float16.
    """
    policy, why = choose_precision(requested, engine)
    keras.mixed_precision.set_global_policy(policy)
    where = accelerator() or "CPU"
    if BACKEND != "tensorflow":
        where += f" ({BACKEND})"
    return policy, f"{where}, {policy} ({why})"


def reset_keras(free_memory: bool = True) -> None:
    """`keras.backend.clear_session()` (before each model: a fresh graph, layer names, seeds),
    keeping the dtype policy `configure_device` set, which clear_session resets to float32."""
    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session(free_memory=free_memory)
    keras.mixed_precision.set_global_policy(policy)


def augment_in_model() -> bool:
    """Augment inside the model (GPU, or no tf.data) rather than in a tf.data pipeline."""
    return BACKEND != "tensorflow" or bool(accelerator())


def configure_determinism(enabled: bool) -> None:
    """Deterministic kernels and tf.data ordering: reruns with one seed give identical bits."""
    if not enabled:
        return
    if BACKEND != "tensorflow":
        raise UserError("--deterministic needs the TensorFlow backend; unset KERAS_BACKEND")
    tf.config.experimental.enable_op_determinism()


def cosine_schedule(learning_rate: float, steps_per_epoch: int, epochs: int):
    """One epoch of linear warm-up from a tenth of the rate, then cosine decay to zero."""
    if epochs == 1:  # nothing to warm up over
        return keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10,
        decay_steps=steps_per_epoch * (epochs - 1),
        warmup_target=learning_rate,
        warmup_steps=steps_per_epoch,
    )


def warmup_cosine(step, learning_rate: float, steps_per_epoch, epochs: int):
    """`cosine_schedule(...)(step)` in plain ops, for a traced per-model `steps_per_epoch`
    (the batched engine: Keras's CosineDecay checks its step counts as Python numbers)."""
    step = ops.cast(step, "float32")
    steps = ops.cast(steps_per_epoch, "float32")
    if epochs == 1:
        return learning_rate * 0.5 * (1 + ops.cos(math.pi * ops.minimum(step, steps) / steps))
    decay = steps * (epochs - 1)
    step = ops.minimum(step, decay + steps)
    warm = (learning_rate - learning_rate / 10) * (step / steps) + learning_rate / 10
    cooled = learning_rate * 0.5 * (1 + ops.cos(math.pi * (step - steps) / decay))
    return ops.where(step < steps, warm, cooled)


def _learning_rate(params: dict, steps_per_epoch: int, epochs: int):
    """A constant rate for `plateau` (the callback lowers it), else `cosine_schedule`."""
    if params["schedule"] == "plateau":
        return params["learning_rate"]
    return cosine_schedule(params["learning_rate"], steps_per_epoch, epochs)


def compile_model(model: keras.Model, params: dict, steps_per_epoch: int, epochs: int) -> None:
    """Attach optimiser, loss and metrics (by keyword: positional metrics become loss_weights)."""
    optimizer = OPTIMIZERS[params["optimizer"]](_learning_rate(params, steps_per_epoch, epochs))
    model.compile(optimizer=optimizer, loss=training_loss(params), metrics=["accuracy"])


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
    if augment_in_model():  # arrays in memory: Keras batches and shuffles them
        trainer = augmenting_model(model, params, augment, seed)
        x, y = train
        data = {"x": x.astype("float32"), "y": y, "batch_size": params["batch_size"],
                "shuffle": True}  # fmt: skip
        steps = math.ceil(len(x) / params["batch_size"])
    else:
        from src.augment.tfdata import make_train_data  # tf.data: TensorFlow only

        trainer = model
        dataset, steps = make_train_data(*train, params, augment, seed)
        data = {"x": dataset, "steps_per_epoch": steps, "shuffle": False}  # the pipeline shuffles
    compile_model(trainer, params, steps, epochs)
    cbs = [LogLearningRate(), *(callbacks or [])]
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
                monitor="accuracy" if val is None else "val_accuracy",
                patience=3,
                factor=0.5,
                min_lr=1e-5,
            )  # fmt: skip
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
