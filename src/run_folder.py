"""A run's folder, `runs/<run-name>/`: create it, check a resumed run against it, save and
reload each finished model.

Each model lives in its own subfolder (`fold_<k>/`, `full_<i>/`): `model.keras`,
`history.json`, its metadata, and `predictions.npz`, written last, so its presence means the
model is complete and a rerun with the same run name reuses it. The batched engine also keeps
`checkpoint.npz` there between epochs. Every file is written atomically (`src/files.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.config import Config
from src.errors import UserError
from src.files import atomic_path, read_json, show, write_json

PREDICTIONS = "predictions.npz"  # the completion marker of a model's folder
CHECKPOINT = "checkpoint.npz"  # the batched engine's state between epochs


def prepare(cfg: Config, params: dict) -> None:
    """Create the run folder, or check that an existing one was trained the same way."""
    settings = {"settings": cfg.training_settings(), "params": params}
    path = cfg.run_dir / "config.json"
    if path.exists():
        previous = read_json(path)
        previous = {"settings": previous["settings"], "params": previous["params"]}
        if previous != settings:
            diff = [
                f"{key} {previous[part].get(key)!r} -> {value!r}"
                for part in settings
                for key, value in settings[part].items()
                if previous[part].get(key) != value
            ]
            raise UserError(
                f"{show(cfg.run_dir)} was trained with other settings ({', '.join(diff)});"
                " rerun with its original flags to resume it, or pick a new --run-name"
            )
        return
    write_json(path, settings)


def checkpoint(cfg: Config) -> Path:
    return cfg.run_dir / CHECKPOINT


def save_model(out: Path, model, history: dict, meta_name: str, meta: dict,
               arrays: dict) -> None:  # fmt: skip
    """Model, history and metadata first; predictions.npz last, as the completion marker."""
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    write_json(out / "history.json", {k: [float(v) for v in vs] for k, vs in history.items()})
    write_json(out / meta_name, meta)
    with atomic_path(out / PREDICTIONS) as tmp:
        np.savez(tmp, **arrays)


def load_model_files(out: Path, meta_name: str) -> tuple[dict, dict] | None:
    """(arrays, metadata) of a model finished by an earlier run, or None if it did not finish."""
    if not (out / PREDICTIONS).exists():
        return None
    with np.load(out / PREDICTIONS) as z:
        arrays = {key: z[key] for key in z.files}
    return arrays, read_json(out / meta_name)
