"""A run's folder, `runs/<run-name>/`: create it, check a resumed run against it, save and
reload each finished model.

Each model lives in its own subfolder (`fold_<k>/`, `full_<i>/`): `model.keras`,
`history.json`, its metadata, and `predictions.npz`, written last, so its presence means the
model is complete and a rerun with the same run name reuses it. The batched engine also keeps
`checkpoint.npz` there between epochs. Every file is written atomically (`src/outputs/files.py`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from src import UserError
from src.config import Config
from src.outputs.files import atomic_path, read_json, show, write_json

PREDICTIONS = "predictions.npz"  # the completion marker of a model's folder
MODEL = "model.keras"
CHECKPOINT = "checkpoint.npz"  # the batched engine's state between epochs


@contextmanager
def locked(cfg: Config) -> Iterator[None]:
    """Hold runs/.<run>.lock while the run trains: a second process given the same --run-name
    is refused at once. The operating system frees the lock when the holder ends, however it
    ends (a kill included)."""
    cfg.runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cfg.runs_dir / f".{cfg.run_name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"--run-name {cfg.run_name}: another process is running it now; wait for it,"
                " or pick another --run-name"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def data_id(data) -> str:
    """A short fingerprint of the training and test images and labels: a resumed run must reuse
    models trained on these very rows."""
    digest = hashlib.sha1()
    for array in (data.x_train, data.y_train, data.x_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return f"{len(data.y_train)} train, {len(data.x_test)} test, sha1 {digest.hexdigest()[:12]}"


def check_resume(cfg: Config, data, params: dict | None = None) -> None:
    """Refuse, before anything is written, to resume a run folder trained another way: other
    settings, other data, or (where already known) other hyperparameters. A run searched first
    is checked again with its parameters once the search has chosen them."""
    path = cfg.run_dir / "config.json"
    if not path.exists():
        if any(cfg.run_dir.glob(f"*/{PREDICTIONS}")):
            raise UserError(
                f"{show(cfg.run_dir)} holds trained models but no config.json, so what trained"
                " them is unknown; pick a new --run-name, or delete that folder to start it again"
            )
        return
    today = {"settings": {**cfg.training_settings(), "data": data_id(data)}}
    if params is not None:
        today["params"] = params
    try:
        previous = read_json(path)
        diff = [c for part in today for c in changes(dict(previous[part]), today[part])]
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"{show(path)} is unreadable; pick a new --run-name, or delete that folder to"
            " start it again"
        ) from None
    if diff:
        raise UserError(
            f"{show(cfg.run_dir)} was trained with other settings ({', '.join(diff)});"
            " rerun with its original flags to resume it, or pick a new --run-name"
        )


def prepare(cfg: Config, params: dict, data) -> None:
    """Create the run folder and its config.json (the settings, the data's fingerprint, the
    hyperparameters and the recipe), or check that an existing one was trained the same way."""
    check_resume(cfg, data, params)
    path = cfg.run_dir / "config.json"
    if not path.exists():
        settings = {**cfg.training_settings(), "data": data_id(data)}
        write_json(path, {"settings": settings, "params": params, "recipe": cfg.recipe})


def changes(recorded: dict, today: dict) -> list[str]:
    """'key recorded -> today' for each setting whose value differs. A setting one side lacks
    (added or removed between them) reads as off there: a setting added later is off at a falsy
    value (0, False, None; the rule for new rows in params.py), so a run recorded before it
    existed trained with it off, and it differs only where the other side has it on ('unset')."""
    out = []
    for key in [*today, *(k for k in recorded if k not in today)]:
        if key not in recorded or key not in today:
            value = today.get(key, recorded.get(key))
            if value:
                old, new = ("unset", repr(value)) if key in today else (repr(value), "unset")
                out.append(f"{key} {old} -> {new}")
        elif recorded[key] != today[key]:
            out.append(f"{key} {recorded[key]!r} -> {today[key]!r}")
    return out


def checkpoint(cfg: Config) -> Path:
    return cfg.run_dir / CHECKPOINT


def bare_model(model):
    """The network alone, in Keras's own layers, without the optimiser, loss and metrics it was
    compiled with: a model.keras that plain Keras loads anywhere (no project code to import for
    a custom loss or the fused BatchNorm), predicting what the trained model predicts."""
    from src.model.batch_norm import with_keras_batch_norm  # Keras: only where models are

    return with_keras_batch_norm(model)  # a new model from the config: never compiled


def save_model(out: Path, model, history: dict, meta_name: str, meta: dict,
               arrays: dict) -> None:  # fmt: skip
    """Model, history and metadata first; predictions.npz last, as the completion marker."""
    with atomic_path(out / MODEL) as tmp:
        bare_model(model).save(tmp)
    write_json(out / "history.json", {k: [float(v) for v in vs] for k, vs in history.items()})
    write_json(out / meta_name, meta)
    with atomic_path(out / PREDICTIONS) as tmp:
        np.savez(tmp, **arrays)


def load_model_files(
    out: Path, meta_name: str, expect: tuple[str, ...], expect_meta: tuple[str, ...]
) -> tuple[dict, dict] | None:
    """(arrays, metadata) of a model finished by an earlier run, or None if it did not finish.

    `expect`, `expect_meta`: the arrays predictions.npz and the keys the metadata must hold
    (nothing more). A damaged folder (a truncated or foreign predictions.npz, a missing or
    truncated model.keras, missing or broken metadata, a missing array) is reported in one line
    and treated as unfinished: the model is trained again.
    """
    if not (out / PREDICTIONS).exists():
        return None
    try:
        with np.load(out / PREDICTIONS) as z:
            arrays = {key: z[key] for key in z.files}
        meta = read_json(out / meta_name)
        if sorted(arrays) != sorted(expect):
            raise ValueError(f"{PREDICTIONS} holds {', '.join(arrays) or 'nothing'}")
        if not isinstance(meta, dict) or sorted(meta) != sorted(expect_meta):
            raise ValueError(f"{meta_name} is not this version's")
        with zipfile.ZipFile(out / MODEL) as z:  # a .keras file is a zip: check every member
            if z.testzip() is not None:
                raise ValueError(f"{MODEL} fails its checksum")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"── {show(out)}: damaged ({reason}); training it again", flush=True)
        return None
    return arrays, meta
