"""Every place a run writes, checked before anything trains: a problem found after an hour of
training would lose that hour.

Nothing is created here: a folder that does not exist yet must be creatable (its nearest
existing parent a writable folder), one that exists must be a writable folder, and the disk
must hold a run's expected size. The study's storage is checked where it is opened
(`src/search/storage.py`), also before training.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from src import UserError
from src.config import Config
from src.outputs.files import show

MODEL_MB = 5  # an upper bound on one model's folder: model.keras, history, predictions
RUN_MB = 20  # ensemble.npz, report and slack


def _problem(folder: Path) -> str | None:
    """Why `folder` cannot be created or written, or None."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return "no part of that path exists"
        existing = existing.parent
    if not existing.is_dir():
        return f"{show(existing)} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{show(existing)} is not writable"
    return None


def check_outputs(cfg: Config) -> None:
    """UserError naming the flag to change if a run could not write everything it will."""
    for flag, folder in (("--runs-dir", cfg.runs_dir), ("--submissions-dir", cfg.submissions_dir)):
        problem = _problem(folder)
        if problem:
            raise UserError(f"{flag} {show(folder)}: cannot write there ({problem}); pick another")
    models = cfg.folds + cfg.full_fits + cfg.pseudo_fits
    need_mb = models * MODEL_MB + RUN_MB
    existing = cfg.runs_dir
    while not existing.exists():
        existing = existing.parent
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < need_mb:
        raise UserError(
            f"--runs-dir {show(cfg.runs_dir)}: {free_mb:.0f} MB free, a run of"
            f" {models} models needs about {need_mb} MB; free some space or"
            " pick another folder"
        )
