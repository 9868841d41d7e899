"""Inside a Kaggle notebook: where the competition's files are and where outputs go.

A notebook has the attached data under /kaggle/input and a writable /kaggle/working, whose
submission.csv is what the notebook's Submit button sends. There, with no --data-dir,
`run.py` reads the competition's folder and writes runs to /kaggle/working/runs and the
submission to /kaggle/working/submission.csv. DIGITS_KAGGLE_ROOT replaces /kaggle (tests).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_VARIABLE = "DIGITS_KAGGLE_ROOT"


def kaggle_root() -> Path | None:
    """The notebook's /kaggle when this process runs in one, else None."""
    root = Path(os.environ.get(ROOT_VARIABLE, "/kaggle"))
    working = root / "working"
    if (root / "input").is_dir() and working.is_dir() and os.access(working, os.W_OK):
        return root
    return None


def competition_data(root: Path, competition: str) -> Path | None:
    """The attached folder holding the competition's train.csv: input/<competition>/ or
    input/competitions/<competition>/, else the only input folder that has one."""
    inputs = root / "input"
    for folder in (inputs / competition, inputs / "competitions" / competition):
        if folder.is_dir():
            return folder
    found = sorted({p.parent for pattern in ("*/train.csv*", "*/*/train.csv*")
                    for p in inputs.glob(pattern)})  # fmt: skip
    return found[0] if len(found) == 1 else None
