"""Load and validate the competition's CSVs before any training starts.

Reads `train.csv` and `test.csv` (also `.csv.gz`, or straight from the competition's zip as
`kaggle competitions download` leaves it), plus the optional `sample_submission.csv` and
`solution.csv` (an answer key for test.csv, as the bundled sample has). Every problem a user can
cause is raised as a `UserError` naming the file, the line or column and what to do.

The layout is read from the files, so the 28x28 family of competitions and datasets loads too:
pixel columns numbered from 0 or from 1, an id column in test.csv (Kannada-MNIST), the
submission's column names and id order from sample_submission.csv (`ImageId,Label` or
`id,label`), and any set of integer classes (24 letters with gaps, not only 0..9).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src import UserError
from src.outputs.files import show

SIDE = 28
ID_COLUMNS = ("ImageId", "id", "Id", "ID")  # what an id column of test.csv may be called
DOWNLOAD_HINT = (
    "download Kaggle's data with `kaggle competitions download -c digit-recognizer -p input` "
    "or use the bundled sample with --data-dir input/sample"
)


@dataclass
class Layout:
    """How the competition names things, read from its files."""

    id_column: str  # the submission's id column: "ImageId" (Digit Recognizer), "id", ...
    label_column: str  # the submission's label column: "Label", "label", ...
    test_ids: np.ndarray  # the submission's ids, in test.csv's row order
    classes: np.ndarray  # the training labels' values, sorted: model output k means classes[k]

    def arrays(self) -> dict:
        """The layout as arrays, to save beside a run's predictions (`from_arrays` reads them)."""
        return {"test_ids": self.test_ids, "classes": self.classes,
                "columns": np.array([self.id_column, self.label_column])}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays) -> Layout:
        id_column, label_column = (str(c) for c in arrays["columns"])
        return cls(id_column, label_column, arrays["test_ids"], arrays["classes"])


DIGIT_RECOGNIZER = "ImageId", "Label"  # the submission's columns without sample_submission.csv


@dataclass
class Digits:
    """Validated data: images as uint8 (N, 28, 28, 1), labels as class indices (into
    `layout.classes`), optional answer key, and the layout."""

    x_train: np.ndarray
    y_train: np.ndarray  # class indices 0..K-1
    x_test: np.ndarray
    test_labels: np.ndarray | None  # class indices, from solution.csv when the data dir has one
    layout: Layout
    source: str  # where train.csv came from, for the summary


def _find(data_dir: Path, name: str, required: bool):
    """Locate `name` as .csv, .csv.gz or inside the competition zip; (opener, display name)."""
    for candidate in (data_dir / f"{name}.csv", data_dir / f"{name}.csv.gz"):
        if candidate.is_file():
            return (lambda c=candidate: c), show(candidate)
    for archive in sorted(data_dir.glob("*.zip")):  # as `kaggle competitions download` leaves it
        try:
            with zipfile.ZipFile(archive) as zf:
                members = set(zf.namelist())
        except zipfile.BadZipFile:
            raise UserError(f"{show(archive)}: not a valid zip file; download it again") from None
        if f"{name}.csv" in members:
            return (lambda a=archive: zipfile.ZipFile(a).open(f"{name}.csv")), (
                f"{show(archive)}:{name}.csv"
            )
    if not required:
        return None, None
    raise UserError(
        f"{show(data_dir / f'{name}.csv')} not found (nor .csv.gz, nor in a .zip): {DOWNLOAD_HINT}"
    )


def _read_csv(opener, name: str) -> pd.DataFrame:
    """pandas.read_csv with its parser errors turned into one line naming the file and line."""
    try:
        df = pd.read_csv(opener(), skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{name}: file is empty; expected a CSV with a header row") from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            want, line, got = m.groups()
            raise UserError(
                f"{name} line {line}: {got} values, the header has {want}"
                f" ({SIDE}x{SIDE} = {SIDE * SIDE} pixels per image); fix or remove that row"
            ) from None
        raise UserError(f"{name}: cannot parse as CSV ({e}); check the file") from None
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{name}: cannot read ({e}); download it again") from None
    if df.empty:
        raise UserError(f"{name}: header only, no rows; expected one row per image")
    return df


def _check_pixel_columns(columns: list[str], name: str) -> int:
    """The pixel columns must be pixel0..pixel783 or pixel1..pixel784, in order; returns the
    first pixel's number."""
    n = len(columns)
    if n != SIDE * SIDE:
        side = int(round(n**0.5))
        shape = f" ({side}x{side} images)" if side * side == n else ""
        raise UserError(
            f"{name}: {n} pixel columns{shape}, expected {SIDE * SIDE} (28x28 images,"
            " pixel0..pixel783); this pipeline takes the 28x28 layout"
        )
    first = 1 if columns[0] == "pixel1" else 0
    for i, got in enumerate(columns):
        if got != f"pixel{first + i}":
            raise UserError(
                f"{name}: column {got!r} where {f'pixel{first + i}'!r} was expected (pixel"
                f" columns must be pixel{first}..pixel{first + SIDE * SIDE - 1}, in order)"
            )
    return first


def _line(row: int) -> int:
    """File line of a data row: line 1 is the header."""
    return row + 2


def _check_values(df: pd.DataFrame, name: str, other_columns: int = 0) -> np.ndarray:
    """All cells integers in 0..255, none blank; return them as uint8 (N, 28, 28, 1).

    `other_columns` counts the non-pixel columns of each CSV line (train.csv's label), so a
    short row is reported with the number of values the user sees in the file.
    """
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            cells = df[col]
            bad = cells.notna() & pd.to_numeric(cells, errors="coerce").isna()
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(
                f"{name} line {_line(row)}, column {col}: {cells.iloc[row]!r} is not an integer;"
                " pixel values must be integers 0..255"
            )
    values = df.to_numpy()
    if values.dtype.kind == "f":
        blank = np.isnan(values)
        if blank.any():
            row, col = np.argwhere(blank)[0]
            filled = int((~blank[row]).sum())
            if blank[row, col:].all():  # a short row rather than one empty cell
                raise UserError(
                    f"{name} line {_line(row)}: {filled + other_columns} values,"
                    f" expected {df.shape[1] + other_columns}"
                    f" ({SIDE}x{SIDE} = {SIDE * SIDE} pixels per image); fix or remove that row"
                )
            raise UserError(
                f"{name} line {_line(row)}, column {df.columns[col]}: blank cell;"
                " every pixel needs a value 0..255"
            )
        fractional = values != np.floor(values)
        if fractional.any():
            row, col = np.argwhere(fractional)[0]
            raise UserError(
                f"{name} line {_line(row)}, column {df.columns[col]}: {values[row, col]} is not"
                " an integer; pixel values must be integers 0..255"
            )
    out_of_range = (values < 0) | (values > 255)
    if out_of_range.any():
        row, col = np.argwhere(out_of_range)[0]
        raise UserError(
            f"{name} line {_line(row)}, column {df.columns[col]}: {values[row, col]:g} is outside"
            " 0..255; pixel values must be 8-bit grey levels"
        )
    return values.astype(np.uint8).reshape(-1, SIDE, SIDE, 1)


def _check_labels(labels: pd.Series, name: str, classes: np.ndarray | None = None) -> np.ndarray:
    """Labels are integers (among `classes`, when given); returns them as integers."""
    numeric = pd.to_numeric(labels, errors="coerce")
    bad = numeric.isna() | (numeric != np.floor(numeric))
    if classes is not None:
        bad |= ~numeric.isin(classes)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        what = "an integer class" if classes is None else "a class of train.csv"
        raise UserError(
            f"{name} line {_line(row)}, column {labels.name}: '{labels.iloc[row]}' is not {what};"
            " fix or remove that row"
        )
    return numeric.to_numpy().astype(np.int64)


def load_train(data_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Images, labels (the file's values) and display name of the training CSV."""
    opener, name = _find(data_dir, "train", required=True)
    df = _read_csv(opener, name)
    if "label" not in df.columns:
        raise UserError(
            f"{name}: no 'label' column; train.csv needs label, pixel0..pixel783"
            " (is this test.csv?)"
        )
    y = _check_labels(df["label"], name)
    if len(np.unique(y)) < 2:
        raise UserError(
            f"{name}: every row has label {y[0]}; a classifier needs rows of at least two"
            " classes (is this a slice of train.csv sorted by label?)"
        )
    pixels = df.drop(columns="label")
    _check_pixel_columns(list(pixels.columns), name)
    return _check_values(pixels, name, other_columns=1), y, name


def load_test(data_dir: Path) -> tuple[np.ndarray, pd.Series | None]:
    """Images of the unlabeled test CSV, and its id column when it has one."""
    opener, name = _find(data_dir, "test", required=True)
    df = _read_csv(opener, name)
    if "label" in df.columns:
        raise UserError(
            f"{name}: has a 'label' column; test.csv holds only pixel0..pixel783"
            " (is this train.csv?)"
        )
    ids = None
    if df.columns[0] in ID_COLUMNS:
        ids, df = df[df.columns[0]], df.drop(columns=df.columns[0])
    _check_pixel_columns(list(df.columns), name)
    return _check_values(df, name, other_columns=int(ids is not None)), ids


def _load_id_label_csv(data_dir: Path, stem: str, ids: np.ndarray | None, n_test: int):
    """An optional two-column id,label file (sample_submission.csv, solution.csv) whose ids are
    test.csv's, in order: test.csv's id column, or 1..N when it has none. None if absent."""
    opener, name = _find(data_dir, stem, required=False)
    if opener is None:
        return None
    df = _read_csv(opener, name)
    if len(df.columns) != 2:
        raise UserError(
            f"{name}: columns {','.join(df.columns)}; expected two, an id and a label (such as"
            " ImageId,Label or id,label)"
        )
    if len(df) != n_test:
        raise UserError(
            f"{name}: {len(df)} rows but test.csv has {n_test} images; they must match one to one"
        )
    id_column = df.columns[0]
    expected = np.arange(1, n_test + 1) if ids is None else np.asarray(ids)
    got = df[id_column].to_numpy()
    if expected.dtype.kind in "iuf":
        got = pd.to_numeric(df[id_column], errors="coerce").to_numpy()
    wrong = got != expected
    if wrong.any():
        row = int(np.argmax(wrong))
        order = "numbers test.csv's rows 1..N" if ids is None else "follows test.csv's id column"
        raise UserError(
            f"{name} line {_line(row)}: {id_column} '{df[id_column].iloc[row]}', expected"
            f" {expected[row]} (the id {order} in order)"
        )
    return df


def read_layout(data_dir: Path, labels: np.ndarray, test_ids, n_test: int) -> Layout:
    """The submission's columns and ids (from sample_submission.csv, else test.csv's id column,
    else Digit Recognizer's ImageId 1..N) and the classes (the training labels' values)."""
    ids = None if test_ids is None else test_ids.to_numpy()
    sample = _load_id_label_csv(data_dir, "sample_submission", ids, n_test)
    if sample is not None:
        id_column, label_column = sample.columns
    elif test_ids is not None:
        id_column, label_column = test_ids.name, "label"
    else:
        id_column, label_column = DIGIT_RECOGNIZER
    return Layout(
        id_column=str(id_column),
        label_column=str(label_column),
        test_ids=np.arange(1, n_test + 1) if ids is None else ids,
        classes=np.unique(labels),
    )


def check_class_counts(data: Digits, folds: int) -> None:
    """Every class needs a row in each of `folds` stratified folds (UserError, not sklearn's
    warning, when one has fewer)."""
    counts = np.bincount(data.y_train, minlength=len(data.layout.classes))
    if folds and counts.min() < folds:
        label, n = data.layout.classes[counts.argmin()], counts.min()
        raise UserError(
            f"train.csv: label {label} has {n} row{'s' * int(n != 1)}, fewer than --folds"
            f" {folds}, so some folds would never see it; use --folds {max(2, n)} or fewer, or"
            " add rows of that label"
        )


def load_digits(data_dir: Path) -> Digits:
    """Read and validate everything in `data_dir`; raises UserError on any problem."""
    if not data_dir.is_dir():
        raise UserError(f"{show(data_dir)}: no such directory; {DOWNLOAD_HINT}")
    x_train, labels, source = load_train(data_dir)
    x_test, test_ids = load_test(data_dir)
    layout = read_layout(data_dir, labels, test_ids, len(x_test))
    solution = _load_id_label_csv(data_dir, "solution", layout.test_ids, len(x_test))
    test_labels = None
    if solution is not None:
        column = solution.columns[1]
        values = _check_labels(solution[column], f"{_find(data_dir, 'solution', False)[1]}",
                               layout.classes)  # fmt: skip
        test_labels = np.searchsorted(layout.classes, values)
    return Digits(
        x_train=x_train,
        y_train=np.searchsorted(layout.classes, labels),
        x_test=x_test,
        test_labels=test_labels,
        layout=layout,
        source=source,
    )
