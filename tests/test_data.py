"""Data loading and validation: every bad input a user can cause ends in exit 2, one clear line,
and nothing written; every good layout Kaggle ships loads to the same arrays."""

from __future__ import annotations

import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run
from src.config import ROOT
from src.data.load import load_digits


def edit_lines(path: Path, line: int, edit) -> None:
    """Replace 1-based `line` of a CSV by edit(cells) (a list of strings)."""
    lines = path.read_text().splitlines()
    lines[line - 1] = ",".join(edit(lines[line - 1].split(",")))
    path.write_text("\n".join(lines) + "\n")


def set_cell(line: int, col: int, value: str):
    def edit(cells):
        cells[col] = value
        return cells

    return line, edit


def frame_edit(fn):
    """Apply fn to the CSV as a DataFrame."""

    def apply(path: Path) -> None:
        fn(pd.read_csv(path)).to_csv(path, index=False)

    return apply


def line_edit(line, edit):
    return lambda path: edit_lines(path, line, edit)


def fourteen_by_fourteen(df: pd.DataFrame) -> pd.DataFrame:
    """Keep 196 pixel columns, renamed pixel0..pixel195: a consistent but foreign layout."""
    keep = [c for c in df.columns if c == "label"] + [f"pixel{i}" for i in range(196)]
    return df[keep]


BAD_INPUTS = {
    # case: (file, mutation, expected message fragments)
    "empty file": ("train.csv", lambda p: p.write_text(""), ["train.csv", "empty"]),
    "header only": (
        "train.csv",
        frame_edit(lambda df: df.iloc[:0]),
        ["train.csv", "header only"],
    ),
    "missing label": (
        "train.csv",
        frame_edit(lambda df: df.drop(columns="label")),
        ["train.csv", "no 'label' column"],
    ),
    "label not an integer": (
        "train.csv",
        line_edit(*set_cell(4, 0, "3.5")),
        ["train.csv line 4, column label", "'3.5'", "not an integer class"],
    ),
    "stray label": (  # a typo makes a class of one row: it cannot be in every fold
        "train.csv",
        line_edit(*set_cell(4, 0, "10")),
        ["train.csv: label 10 has 1 row, fewer than --folds 2"],
    ),
    "one class": (  # a slice of a file sorted by label: nothing to tell apart
        "train.csv",
        frame_edit(lambda df: df.assign(label=3)),
        ["train.csv: every row has label 3", "at least two classes"],
    ),
    "pixel column missing": (
        "train.csv",
        frame_edit(lambda df: df.drop(columns="pixel400")),
        ["train.csv", "783 pixel columns", "expected 784"],
    ),
    "extra column": (
        "train.csv",
        frame_edit(lambda df: pd.concat([df, pd.Series(0, index=df.index, name="extra")], axis=1)),
        ["train.csv", "785 pixel columns"],
    ),
    "misnamed column": (
        "train.csv",
        frame_edit(lambda df: df.rename(columns={"pixel5": "pixl5"})),
        ["train.csv", "'pixl5' where 'pixel5' was expected"],
    ),
    "blank cell": (
        "train.csv",
        line_edit(*set_cell(3, 100, "")),
        ["train.csv line 3, column pixel99", "blank"],
    ),
    "value above 255": (
        "train.csv",
        line_edit(*set_cell(5, 300, "256")),
        ["train.csv line 5, column pixel299", "256", "0..255"],
    ),
    "negative value": (
        "test.csv",
        line_edit(*set_cell(2, 10, "-3")),
        ["test.csv line 2, column pixel10", "-3", "0..255"],
    ),
    "text value": (
        "train.csv",
        line_edit(*set_cell(6, 50, "abc")),
        ["train.csv line 6, column pixel49", "'abc'", "not an integer"],
    ),
    "fractional value": (
        "test.csv",
        line_edit(*set_cell(7, 20, "12.5")),
        ["test.csv line 7, column pixel20", "12.5", "not an integer"],
    ),
    "short row": (
        "train.csv",
        line_edit(8, lambda cells: cells[:700]),
        ["train.csv line 8", "700 values, expected 785", "28x28"],
    ),
    "long row": (
        "test.csv",
        line_edit(9, lambda cells: cells + ["0"]),
        ["test.csv line 9", "785 values", "header has 784"],
    ),
    "not 28x28": (
        "train.csv",
        frame_edit(fourteen_by_fourteen),
        ["train.csv", "196 pixel columns (14x14 images)", "28x28"],
    ),
    "test has label": (
        "test.csv",
        frame_edit(lambda df: pd.concat([pd.Series(1, index=df.index, name="label"), df], axis=1)),
        ["test.csv", "has a 'label' column"],
    ),
    "test layout differs from train": (
        "test.csv",
        frame_edit(fourteen_by_fourteen),
        ["test.csv", "196 pixel columns"],
    ),
    "a digit rarer than the folds": (
        "train.csv",
        frame_edit(
            lambda df: df.assign(
                label=df["label"].where(
                    (df["label"] != 3) | (df.index == df.index[df["label"] == 3][0]), 4
                )
            )
        ),
        ["train.csv: label 3 has 1 row, fewer than --folds 2", "use --folds 2 or fewer"],
    ),
    "sample submission ids": (
        "sample_submission.csv",
        line_edit(*set_cell(10, 0, "99")),
        ["sample_submission.csv line 10", "ImageId '99', expected 9"],
    ),
    "sample submission length": (
        "sample_submission.csv",
        frame_edit(lambda df: df.iloc[:-1]),
        ["sample_submission.csv", "49 rows but test.csv has 50"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(case, small_dir, runner):
    file, mutate, fragments = BAD_INPUTS[case]
    mutate(small_dir / file)
    code, out, err = runner("--data-dir", str(small_dir), "--folds", "2", "--epochs", "1")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]
    assert runner.written() == []


def test_missing_data_names_the_download_command_and_the_sample(tmp_path, runner):
    (tmp_path / "empty").mkdir()
    code, _, err = runner("--data-dir", str(tmp_path / "empty"))
    assert code == 2
    assert "train.csv not found" in err
    assert "kaggle competitions download -c digit-recognizer -p input" in err
    assert "--data-dir input/sample" in err
    assert runner.written() == []


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--folds", "1"], "--folds: one fold validates on every row it trained on"),
        (["--runs", "--scores"], "argument --scores: not allowed with argument --runs"),
        (["--report", "r", "--search-only", "--trials", "2"], "not allowed with argument"),
        (["--on-kaggle", "--scores"], "--on-kaggle: trains a run, or with --report RUN"),
        (["--scores", "--submit"], "--submit: sends a run's submission; not with --scores"),
        (["--wait"], "--wait: waits for the score of a --submit; add --submit"),
        (["--folds", "0", "--full-fits", "0"], "trains no model; give --full-fits N"),
        (["--pseudo-labels", "1"], "--pseudo-labels: expected at least 0 and below 1, got 1.0"),
        (["--pseudo-labels", "-0.5"], "--pseudo-labels: expected at least 0 and below 1"),
        (["--seed", "-1"], "--seed: expected at least 0 and at most 2147483647, got -1"),
        (
            ["--folds", "2", "--trials", "2", "--search-folds", "3"],
            "--search-folds 3: a trial validates on folds of --folds 2; give at most 2",
        ),
        (["--timeout", "0"], "--timeout: expected above 0, got 0.0"),
        (["--recipe", "nope"], "--recipe nope: no such recipe"),
        (["--folds", "0", "--trials", "3"], "the search validates its trials on folds"),
        (["--epochs", "0"], "--epochs"),
        (["--trials", "-1"], "--trials"),
        (["--augment", "magic"], "--augment"),
        (["--run-name", "../escape"], "--run-name"),
        (["--set", "no_such_param=1"], "KEY one of"),
        (["--set", "filters=4.5"], "filters='4.5': expected a int"),
        (["--set", "optimizer=adamw"], "expected one of adam, rmsprop, sgd"),
        (["--set", "dropout"], "expected KEY=VALUE"),
        (["--set", "dropout=1.5"], "dropout=1.5: expected at least 0 and below 1"),
        (["--set", "batch_size=0"], "batch_size=0: expected at least 1"),
        (["--set", "learning_rate=-0.01"], "learning_rate=-0.01: expected above 0"),
        (["--set", "kernel_size=7"], "kernel_size=7: expected at least 1 and at most 5"),
        (["--set", "label_smoothing=1"], "label_smoothing=1.0: expected at least 0 and below 1"),
    ],
)
def test_bad_flags_exit_2(flags, fragment, small_dir, runner):
    with pytest.raises(SystemExit) as exit_:
        runner("--data-dir", str(small_dir), *flags)
    assert exit_.value.code == 2
    err = runner.capsys.readouterr().err
    assert fragment in err and err.strip().splitlines() == [err.strip()], err
    assert not runner.runs.exists() and not runner.subs.exists()


def test_cli_user_error_has_no_traceback(small_dir, tmp_path):
    """The real command line: exit status 2 and a single stderr line."""
    (small_dir / "train.csv").write_text("")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(small_dir),
         "--runs-dir", str(tmp_path / "r"), "--submissions-dir", str(tmp_path / "s")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


def test_sample_loads_as_documented():
    data = load_digits(ROOT / "input" / "sample")
    assert data.x_train.shape == (8000, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (2000, 28, 28, 1)
    assert set(np.unique(data.y_train)) == set(range(10))
    assert len(data.test_labels) == 2000 and list(data.layout.test_ids[:3]) == [1, 2, 3]
    assert (data.layout.id_column, data.layout.label_column) == ("ImageId", "Label")
    assert list(data.layout.classes) == list(range(10))
    assert data.x_train.max() == 255 and data.x_train.min() == 0


def test_kaggle_zip_and_gzip_load_like_plain_csv(small_dir, tmp_path):
    plain = load_digits(small_dir)
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    with zipfile.ZipFile(zipped / "digit-recognizer.zip", "w") as zf:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            zf.write(small_dir / name, name)
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("train.csv", "test.csv"):
        (gz / f"{name}.gz").write_bytes(gzip.compress((small_dir / name).read_bytes()))
    for other in (load_digits(zipped), load_digits(gz)):
        np.testing.assert_array_equal(other.x_train, plain.x_train)
        np.testing.assert_array_equal(other.y_train, plain.y_train)
        np.testing.assert_array_equal(other.x_test, plain.x_test)
    assert "digit-recognizer.zip:train.csv" in load_digits(zipped).source


def test_pixels_keep_row_major_layout(small_dir, sample_frames):
    """pixel(28*r + c) is the image's row r, column c (not column r, row c)."""
    data = load_digits(small_dir)
    row = sample_frames[0].iloc[3]
    pixels = row.iloc[1:].to_numpy().reshape(28, 28)
    r, c = np.argwhere(pixels != pixels.T)[0]  # a pixel that differs from its transpose
    assert data.x_train[3, r, c, 0] == row[f"pixel{28 * r + c}"] != row[f"pixel{28 * c + r}"]
    np.testing.assert_array_equal(data.x_train[3, :, :, 0], pixels)
    assert data.y_train[3] == row["label"]


@pytest.mark.parametrize("flag", ["--runs-dir", "--submissions-dir"])
@pytest.mark.parametrize("place", ["below a file", "/proc/nope", "/proc/self"])
def test_an_output_folder_that_cannot_be_made_is_refused_before_training(
    flag, place, small_dir, tmp_path, capsys
):
    """Made and probed, not guessed: /proc passes a permission check even as root, yet nothing
    can be made in it, and an existing /proc/self takes no file. The other folder, made by the
    check, is removed again."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    dirs = {"--runs-dir": tmp_path / "runs", "--submissions-dir": tmp_path / "subs"}
    dirs[flag] = blocker / "below" if place == "below a file" else Path(place)
    argv = ["--data-dir", str(small_dir), "--folds", "2", "--epochs", "1", "--trials", "0"]
    code = run.main([*argv, *(str(x) for kv in dirs.items() for x in kv)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert f"{flag} {dirs[flag].resolve()}: cannot write there" in err and "pick another" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "subs").exists()
    assert "Epoch" not in out


def test_too_little_disk_is_refused_before_training(small_dir, tmp_path, capsys, monkeypatch):
    from src.outputs import checks as outputs

    real = outputs.shutil.disk_usage
    monkeypatch.setattr(outputs.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=12 * 2**20))  # 12 MB free  # fmt: skip
    outputs_ = ["--runs-dir", str(tmp_path / "runs"), "--submissions-dir", str(tmp_path / "subs")]
    argv = ["--data-dir", str(small_dir), "--folds", "2", "--full-fits", "1", "--trials", "0",
            *outputs_]  # fmt: skip
    code = run.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert "--runs-dir" in err and "12 MB free, a run of 3 models needs about 35 MB" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "subs").exists()
