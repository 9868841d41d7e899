"""Every place a run writes, checked before anything trains: a problem found after an hour of
training would lose that hour.

Each output folder is made and a file written into it and removed: permissions read from the
folder can lie (root passes `os.access` on folders it cannot write, such as /proc). The folders
made here are removed again if a later check refuses the run, so a refused run leaves nothing.
The disk must also hold a run's expected size.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src import UserError
from src.config import Config, flag_of
from src.outputs.files import show

MODEL_MB = 5  # an upper bound on one model's folder: model.keras, history, predictions
RUN_MB = 20  # ensemble.npz, report and slack


def make_and_probe(flag: str, folder: Path) -> list[Path]:
    """Make `folder` (and its missing parents) and write a file into it; the folders this made,
    outermost first. UserError naming `flag` if either fails."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        remove_made(missing)
        reason = e.strerror or type(e).__name__
        raise UserError(
            f"{flag} {show(folder)}: cannot write there ({reason}); pick another"
        ) from None
    return missing


def remove_made(made: list[Path]) -> None:
    """Remove folders a check made (innermost first), where they are still empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or gone: leave it and its parents


@contextmanager
def output_folders(cfg: Config) -> Iterator[None]:
    """Make and probe the runs and submissions folders and check the disk; the checks run in
    the block may still refuse the run, and then the folders made here are removed again."""
    made: list[Path] = []
    try:
        for name in ("runs_dir", "submissions_dir"):
            made += make_and_probe(flag_of(name), getattr(cfg, name))
        check_space(cfg)
        yield
    except BaseException:
        remove_made(made)
        raise


def check_space(cfg: Config) -> None:
    """UserError if --runs-dir's disk cannot hold the run's models."""
    models = cfg.folds + cfg.full_fits + cfg.pseudo_fits
    need_mb = models * MODEL_MB + RUN_MB
    free_mb = shutil.disk_usage(cfg.runs_dir).free / 2**20
    if free_mb < need_mb:
        raise UserError(
            f"--runs-dir {show(cfg.runs_dir)}: {free_mb:.0f} MB free, a run of"
            f" {models} models needs about {need_mb} MB; free some space or"
            " pick another folder"
        )
