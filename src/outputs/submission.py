"""Kaggle submission files: build, check, write atomically, and the command that submits one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.load import DIGIT_RECOGNIZER, Layout
from src.outputs.files import atomic_path, show

COMPETITION = "digit-recognizer"


def digit_recognizer(n_test: int) -> Layout:
    """Digit Recognizer's layout for n test images: ImageId 1..N, Label 0..9."""
    return Layout(*DIGIT_RECOGNIZER, np.arange(1, n_test + 1), np.arange(10))


def make_submission(predicted: np.ndarray, layout: Layout) -> pd.DataFrame:
    """The ids in test.csv's order and each image's predicted class (`predicted`: indices)."""
    return pd.DataFrame({layout.id_column: layout.test_ids,
                         layout.label_column: layout.classes[predicted].astype(int)})  # fmt: skip


def check_submission(sub: pd.DataFrame, layout: Layout) -> None:
    """Raise ValueError unless `sub` is what Kaggle accepts for this competition's test.csv."""
    columns = [layout.id_column, layout.label_column]
    if list(sub.columns) != columns:
        raise ValueError(f"submission columns {list(sub.columns)}, expected {', '.join(columns)}")
    if len(sub) != len(layout.test_ids):
        raise ValueError(f"submission has {len(sub)} rows, test.csv has {len(layout.test_ids)}")
    if not np.array_equal(sub[layout.id_column].to_numpy(), layout.test_ids):
        raise ValueError(f"submission {layout.id_column}s are not test.csv's, in its order")
    labels = sub[layout.label_column]
    if labels.dtype.kind not in "iu" or not labels.isin(layout.classes).all():
        raise ValueError("submission labels must be integers among the training classes")


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
    id_column, label_column = sub.columns
    try:
        old = pd.read_csv(path)
        if list(old.columns) != list(sub.columns):
            raise ValueError(f"columns {','.join(old.columns)}, not {id_column},{label_column}")
        if len(old) != len(sub) or not np.array_equal(old[id_column], sub[id_column]):
            raise ValueError(f"other {id_column}s (another test set)")
    except (ValueError, pd.errors.ParserError) as e:
        return {"previous": previous, "reason": str(e).splitlines()[0]}
    changed = sub[id_column][old[label_column].to_numpy() != sub[label_column].to_numpy()]
    return {"previous": previous, "changed": len(changed), "image_ids": changed.tolist(),
            "id_column": id_column}  # fmt: skip


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
    column = diff.get("id_column", "ImageId")
    return f"{diff['changed']} labels changed against {diff['previous']} ({column}s {ids})"


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
