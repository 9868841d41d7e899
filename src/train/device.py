"""Where and how a model trains: the Keras backend, the GPU if any, the dtype policy measured
fastest for it, determinism, and a clean Keras session before each model.

Keras 3 runs on TensorFlow (the default), JAX or PyTorch (`KERAS_BACKEND`). On a CPU with
TensorFlow, augmentation runs in a `tf.data` pipeline overlapped with training
(src/model/augment/tfdata.py); on a GPU, or on another backend, it runs as the model's first
layer (`RandomWarp`, src/model/augment/warp.py), on the accelerator, fed from arrays in memory.
"""

from __future__ import annotations

from pathlib import Path

import keras

from src import UserError
from src.config import flag_of

BACKEND = keras.backend.backend()


if BACKEND == "tensorflow":
    import tensorflow as tf

    # Each fold predicts with a new model, so Keras traces a new predict function per fold; TF's
    # "triggered tf.function retracing" warning about that is expected here, not a problem. Only
    # that message is dropped; TensorFlow's other warnings still show.
    RETRACING = "triggered tf.function retracing"
    tf.get_logger().addFilter(lambda record: RETRACING not in record.getMessage())


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

    Measurements behind the choices: benchmarks/README.md ("Model compute efficiency") and the
    lab log, docs/experiments.md ("Precision", "Engines on a GPU").
    """
    if requested != "auto":
        return requested, flag_of("precision")
    if accelerator():
        if engine != "batched":
            return "float32", "GPU, model.fit: mixed precision measured slower"
        # NVIDIA computes bfloat16 in hardware from compute capability 8.0 (Ampere) on; older
        # cards (Kaggle's T4 and P100) and unknown ones emulate it, through float32.
        if (gpu_compute_capability() or (0, 0)) < (8, 0):
            return "float32", "GPU, batched engine: no bfloat16 units known on this GPU"
        # accuracy: float32's (docs/experiments.md, "Precision")
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
