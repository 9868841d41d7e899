"""Training engines: which one a run uses, and building it.

A caller describes each model as a `Job` (the training rows, the validation rows or none, a
seed) and asks an engine to `train` a list of them; the engine calls `on_done` with
each model's `Trained` result as soon as that model is final. Two engines share this interface:

- `sequential` (`sequential.py`): one `model.fit` after another. Any Keras backend; the
  default on a CPU, where TensorFlow's `tf.data` path is fastest.
- `batched` (`batched.py`, its programs in `batched_program.py`): every job of the call
  trained together as one compiled JAX program (weights stacked, one `jax.vmap`ped train step,
  an epoch as one `lax.scan`, the data on the device). Keras on JAX; the default when JAX has a
  GPU.

Both keep the same semantics: validated jobs early-stop on their validation loss with
`patience` and keep their best epoch; jobs without validation rows train every epoch.
"""

from __future__ import annotations

from pathlib import Path

import keras

from src import UserError
from src.train import BATCHED_JAX


def backend_has_gpu() -> bool:
    """Whether Keras runs on JAX and JAX sees a GPU: the batched engine's home."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return any(d.platform == "gpu" for d in jax.devices())


def keep_compiled_programs(runs_dir: Path) -> Path | None:
    """On JAX, keep every program XLA compiles in `runs_dir/.jax-cache` (JAX's persistent
    compilation cache): a later run, or a search's next trial process, that needs the same
    program loads it instead of compiling it again. Returns the folder; None on TensorFlow.

    Call it before anything compiles. Every program is kept, however fast its compile, so a
    rerun of the same settings compiles nothing (the files are small).
    """
    if keras.backend.backend() != "jax":
        return None
    import jax

    folder = runs_dir / ".jax-cache"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def jax_too_old() -> str | None:
    """JAX's version where it is older than the batched engine supports, else None."""
    import jax

    found = tuple(int(n) for n in jax.__version__.split(".")[:3] if n.isdigit())
    return jax.__version__ if found < BATCHED_JAX else None


def engine_note() -> str:
    """Why the sequential engine trains on a GPU where JAX is installed, for the engine line:
    a JAX older than the batched engine supports ("" elsewhere). On TensorFlow the Kaggle
    notebook's script chose it so (src/remote.py)."""
    from importlib.util import find_spec

    from src.train.device import accelerator

    on_gpu = backend_has_gpu() if keras.backend.backend() == "jax" else bool(accelerator())
    old = on_gpu and find_spec("jax") is not None and jax_too_old()
    wanted = ".".join(map(str, BATCHED_JAX))
    return f" (JAX {old} is older than the batched engine's {wanted})" if old else ""


def resolve_engine(requested: str) -> str:
    """`--engine auto` -> batched with JAX on a GPU (a JAX it supports), else sequential; a
    forced choice checked."""
    if requested == "auto":
        return "batched" if backend_has_gpu() and not jax_too_old() else "sequential"
    if requested == "batched" and keras.backend.backend() != "jax":
        raise UserError(
            f"--engine batched: needs Keras on JAX, this is {keras.backend.backend()};"
            " run with KERAS_BACKEND=jax (pip install -r requirements-gpu.txt on a GPU)"
        )
    if requested == "batched" and jax_too_old():
        raise UserError(
            f"--engine batched: needs JAX {'.'.join(map(str, BATCHED_JAX))} or newer, this is"
            f" {jax_too_old()}; upgrade JAX, or use --engine sequential"
        )
    return requested


def check_engine_settings(engine: str, precision: str, overrides=()) -> None:
    """Refuse what the batched engine does not do: float16, whose gradients need loss scaling
    (Keras's `fit` wraps the optimiser in a LossScaleOptimizer), and a weight average."""
    if engine == "batched" and precision == "mixed_float16":
        raise UserError(
            "--engine batched: --precision mixed_float16 needs loss scaling, which this engine"
            " does not do; use --precision mixed_bfloat16"
        )
    if engine == "batched" and dict(overrides).get("ema_momentum"):
        raise UserError(
            "--engine batched: --set ema_momentum (a weight average) is model.fit's only; use"
            " --engine sequential, or leave it out"
        )


def make_engine(name: str, params: dict, data, **settings):
    """The engine called `name` ("sequential" or "batched"), ready to `train` jobs.

    `settings`: epochs, patience, augment, and optionally verbose and predict_test.
    """
    if resolve_engine(name) == "batched":
        from src.train.batched import BatchedEngine

        return BatchedEngine(params, data, **settings)
    from src.train.sequential import SequentialEngine

    engine = SequentialEngine(params, data, **settings)
    engine.note = engine_note()
    return engine
