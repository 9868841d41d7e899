"""Load and validate the competition's CSVs before any training starts.

Reads `train.csv` and `test.csv` (also `.csv.gz`, or straight from `digit-recognizer.zip` as
`kaggle competitions download` leaves it), plus the optional `sample_submission.csv` and
`solution.csv` (an answer key for test.csv, as the bundled sample has). Every problem a user can
cause is raised as a `UserError` naming the file, the line or column and what to do.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src.errors import UserError
from src.files import show

SIDE = 28
PIXELS = [f"pixel{i}" for i in range(SIDE * SIDE)]
CLASSES = np.arange(10)
ARCHIVE = "digit-recognizer.zip"
DOWNLOAD_HINT = (
    "download Kaggle's data with `kaggle competitions download -c digit-recognizer -p input` "
    "or use the bundled sample with --data-dir input/sample"
)


@dataclass
class Digits:
    """Validated data: images as uint8 (N, 28, 28, 1), labels as int, optional answer key."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    test_labels: np.ndarray | None  # from solution.csv, when the data dir has one
    sample_ids: np.ndarray | None  # ImageIds of sample_submission.csv, when present
    source: str  # where train.csv came from, for the summary


def _find(data_dir: Path, name: str, required: bool):
    """Locate `name` as .csv, .csv.gz or inside the competition zip; (opener, display name)."""
    for candidate in (data_dir / f"{name}.csv", data_dir / f"{name}.csv.gz"):
        if candidate.is_file():
            return (lambda c=candidate: c), show(candidate)
    archive = data_dir / ARCHIVE
    if archive.is_file():
        try:
            with zipfile.ZipFile(archive) as zf:
                members = set(zf.namelist())
        except zipfile.BadZipFile:
            raise UserError(f"{show(archive)}: not a valid zip file; download it again") from None
        if f"{name}.csv" in members:
            return (lambda: zipfile.ZipFile(archive).open(f"{name}.csv")), (
                f"{show(archive)}:{name}.csv"
            )
    if not required:
        return None, None
    raise UserError(
        f"{show(data_dir / f'{name}.csv')} not found (nor .csv.gz, nor {ARCHIVE}): {DOWNLOAD_HINT}"
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


def _check_pixel_columns(columns: list[str], name: str) -> None:
    """The pixel columns must be exactly pixel0..pixel783, in order."""
    n = len(columns)
    if n != len(PIXELS):
        side = int(round(n**0.5))
        shape = f" ({side}x{side} images)" if side * side == n else ""
        raise UserError(
            f"{name}: {n} pixel columns{shape}, expected {len(PIXELS)} (28x28 images,"
            " pixel0..pixel783); this pipeline takes Kaggle's 28x28 layout"
        )
    for got, want in zip(columns, PIXELS, strict=True):
        if got != want:
            raise UserError(
                f"{name}: column {got!r} where {want!r} was expected"
                " (pixel columns must be pixel0..pixel783, in order)"
            )


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


def _check_labels(labels: pd.Series, name: str) -> np.ndarray:
    """Labels are integers among CLASSES."""
    numeric = pd.to_numeric(labels, errors="coerce")
    bad = numeric.isna() | ~numeric.isin(CLASSES)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise UserError(
            f"{name} line {_line(row)}, column {labels.name}: '{labels.iloc[row]}' is not a digit"
            " class"
            f" ({CLASSES.min()}..{CLASSES.max()}); fix or remove that row"
        )
    return numeric.to_numpy().astype(np.int64)


def load_train(data_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Images, labels and display name of the training CSV."""
    opener, name = _find(data_dir, "train", required=True)
    df = _read_csv(opener, name)
    if "label" not in df.columns:
        raise UserError(
            f"{name}: no 'label' column; train.csv needs label, pixel0..pixel783"
            " (is this test.csv?)"
        )
    y = _check_labels(df["label"], name)
    pixels = df.drop(columns="label")
    _check_pixel_columns(list(pixels.columns), name)
    return _check_values(pixels, name, other_columns=1), y, name


def load_test(data_dir: Path) -> np.ndarray:
    """Images of the unlabeled test CSV."""
    opener, name = _find(data_dir, "test", required=True)
    df = _read_csv(opener, name)
    if "label" in df.columns:
        raise UserError(
            f"{name}: has a 'label' column; test.csv holds only pixel0..pixel783"
            " (is this train.csv?)"
        )
    _check_pixel_columns(list(df.columns), name)
    return _check_values(df, name)


def _load_id_label_csv(data_dir: Path, stem: str, n_test: int) -> pd.DataFrame | None:
    """An optional ImageId,Label file whose ImageIds must be test.csv's rows 1..N in order.

    Its Label column is checked when `stem` is an answer key (solution.csv).
    """
    opener, name = _find(data_dir, stem, required=False)
    if opener is None:
        return None
    df = _read_csv(opener, name)
    if list(df.columns[:2]) != ["ImageId", "Label"]:
        raise UserError(f"{name}: expected columns ImageId,Label, found {','.join(df.columns)}")
    if len(df) != n_test:
        raise UserError(
            f"{name}: {len(df)} rows but test.csv has {n_test} images; they must match one to one"
        )
    ids = pd.to_numeric(df["ImageId"], errors="coerce").to_numpy()
    wrong = ids != np.arange(1, n_test + 1)
    if wrong.any():
        row = int(np.argmax(wrong))
        raise UserError(
            f"{name} line {_line(row)}: ImageId '{df['ImageId'].iloc[row]}', expected {row + 1}"
            " (ImageIds number test.csv's rows 1..N in order)"
        )
    if stem == "solution":
        df["Label"] = _check_labels(df["Label"], name)
    return df


def check_class_counts(labels: np.ndarray, folds: int) -> None:
    """Every digit needs a row in each of `folds` stratified folds (UserError, not sklearn's
    warning, when one has fewer)."""
    classes, counts = np.unique(labels, return_counts=True)
    if folds and counts.min() < folds:
        digit, n = classes[counts.argmin()], counts.min()
        raise UserError(
            f"train.csv: digit {digit} has {n} row{'s' * int(n != 1)}, fewer than --folds {folds},"
            f" so some folds would never see it; use --folds {max(2, n)} or fewer, or add rows"
            " of that digit"
        )


def load_digits(data_dir: Path) -> Digits:
    """Read and validate everything in `data_dir`; raises UserError on any problem."""
    if not data_dir.is_dir():
        raise UserError(f"{show(data_dir)}: no such directory; {DOWNLOAD_HINT}")
    x_train, y_train, source = load_train(data_dir)
    x_test = load_test(data_dir)
    sample = _load_id_label_csv(data_dir, "sample_submission", len(x_test))
    solution = _load_id_label_csv(data_dir, "solution", len(x_test))
    return Digits(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        test_labels=None if solution is None else solution["Label"].to_numpy(),
        sample_ids=None if sample is None else sample["ImageId"].to_numpy(),
        source=source,
    )
