"""Kaggle submission files: build, check, write atomically, and the command that submits one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from src.data import CLASSES
from src.files import atomic_path, show

COMPETITION = "digit-recognizer"


def make_submission(labels: np.ndarray) -> pd.DataFrame:
    """ImageId (1..N, in test.csv order) and predicted Label."""
    return pd.DataFrame({"ImageId": np.arange(1, len(labels) + 1), "Label": labels.astype(int)})


def check_submission(sub: pd.DataFrame, n_test: int, sample_ids: np.ndarray | None) -> None:
    """Raise ValueError unless `sub` is what Kaggle accepts for this test.csv."""
    if list(sub.columns) != ["ImageId", "Label"]:
        raise ValueError(f"submission columns {list(sub.columns)}, expected ImageId, Label")
    if len(sub) != n_test:
        raise ValueError(f"submission has {len(sub)} rows, test.csv has {n_test}")
    if not np.array_equal(sub["ImageId"].to_numpy(), np.arange(1, n_test + 1)):
        raise ValueError("submission ImageIds are not 1..N in test.csv order")
    if sub["Label"].dtype.kind not in "iu" or not sub["Label"].isin(CLASSES).all():
        raise ValueError("submission labels must be integers among the training classes")
    if sample_ids is not None and not np.array_equal(sub["ImageId"].to_numpy(), sample_ids):
        raise ValueError("submission ImageIds differ from sample_submission.csv's")


def compare_with_previous(sub: pd.DataFrame, path: Path) -> dict | None:
    """How `sub` differs from the submission now at `path`, the one it is about to replace.

    None when there is none; else {"previous", "changed", "image_ids"} or, when the two cannot
    be compared (another test set, an unreadable file), {"previous", "reason"}.
    """
    if not path.exists():
        return None
    previous = show(path)
    twins = [p for p in path.parent.glob("*.csv") if p != path and _same_bytes(p, path)]
    if twins:  # the run-named copy tells which run wrote it
        previous += f" (= {max(twins, key=lambda p: p.stat().st_mtime).name})"
    try:
        old = pd.read_csv(path)
        check_submission(old, len(sub), None)
    except (ValueError, pd.errors.ParserError) as e:
        return {"previous": previous, "reason": str(e).splitlines()[0]}
    changed = sub["ImageId"][old["Label"].to_numpy() != sub["Label"].to_numpy()]
    return {"previous": previous, "changed": len(changed), "image_ids": changed.tolist()}


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def describe_diff(diff: dict | None) -> str:
    """One line for the summary and the report."""
    if diff is None:
        return "no previous submission to compare with"
    if "reason" in diff:
        return f"not comparable with {diff['previous']}: {diff['reason']}"
    if not diff["changed"]:
        return f"same labels as {diff['previous']}"
    ids = ", ".join(map(str, diff["image_ids"][:20])) + (" ..." if diff["changed"] > 20 else "")
    return f"{diff['changed']} labels changed against {diff['previous']} (ImageIds {ids})"


def write_submission(sub: pd.DataFrame, path: Path, copies: list[Path] = ()) -> None:
    """Write `sub` to `path` and to each of `copies`, each atomically."""
    with atomic_path(path) as tmp:
        sub.to_csv(tmp, index=False)
    for copy in copies:
        with atomic_path(copy) as tmp:
            shutil.copyfile(path, tmp)


def submit_command(path: Path | str, message: str, competition: str = COMPETITION) -> list[str]:
    """The official CLI call that uploads `path` to the competition."""
    return ["kaggle", "competitions", "submit", "-c", competition, "-f", str(path), "-m", message]
