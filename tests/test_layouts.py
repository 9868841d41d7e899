"""The 28x28 family: other competitions' and datasets' layouts, built from the bundled sample,
each trains and writes a submission in that layout's own columns, ids and labels."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from conftest import Runner

SIGN = np.array([c for c in range(25) if c != 9])  # Sign Language MNIST: 24 letters, no J (9)
QUICK = ["--folds", "0", "--full-fits", "1", "--epochs", "3", "--trials", "0", "--seed", "4"]


def kannada(train, test, solution):
    """Kannada-MNIST: test.csv starts with an id column (from 0); submissions are id,label."""
    ids = np.arange(len(test))
    test = pd.concat([pd.Series(ids, name="id"), test], axis=1)
    sample = pd.DataFrame({"id": ids, "label": 0})
    return train, test, sample, pd.DataFrame({"id": ids, "label": solution["Label"]})


def fashion(train, test, solution):
    """Fashion-MNIST's CSVs: pixel1..pixel784; no sample submission (ImageId,Label then)."""
    rename = {f"pixel{i}": f"pixel{i + 1}" for i in range(784)}
    return train.rename(columns=rename), test.rename(columns=rename), None, solution


def letters(train, test, solution):
    """24 classes with a gap (Sign Language MNIST's labels): digit d of row i is the letter
    SIGN[(d + 10 (i mod 3)) mod 24], so every letter has rows."""
    index = (train["label"] + 10 * (np.arange(len(train)) % 3)) % 24
    train = train.assign(label=SIGN[index])
    return train, test, None, None


@pytest.mark.parametrize("layout", [kannada, fashion, letters])
def test_a_family_layout_trains_and_writes_its_own_submission(
    layout, tmp_path, sample_frames, capsys
):
    sizes = (900, 120, 120)
    train, test, solution = (f.iloc[:n].reset_index(drop=True)
                             for f, n in zip(sample_frames, sizes, strict=True))  # fmt: skip
    train, test, sample, solution = layout(train, test, solution)
    data = tmp_path / "data"
    data.mkdir()
    train.to_csv(data / "train.csv", index=False)
    test.to_csv(data / "test.csv", index=False)
    if sample is not None:
        sample.to_csv(data / "sample_submission.csv", index=False)
    if solution is not None:
        solution.to_csv(data / "solution.csv", index=False)
    runner = Runner(tmp_path, capsys)
    code, out, err = runner("--data-dir", str(data), *QUICK, "--run-name", "family")
    assert code == 0, err
    sub = pd.read_csv(runner.subs / "submission.csv")
    expected = sample if sample is not None else pd.DataFrame({"ImageId": range(1, 121)})
    assert list(sub.columns) == [expected.columns[0], "label" if sample is not None else "Label"]
    assert sub.iloc[:, 0].tolist() == expected.iloc[:, 0].tolist()  # the ids, in test.csv's order
    classes = np.unique(train["label"])
    assert set(sub.iloc[:, 1]) <= set(classes)
    model = keras.saving.load_model(runner.runs / "family" / "full_1" / "model.keras")
    assert model.output_shape == (None, len(classes))
    if solution is not None:  # the answer key reads in the same layout, and it learned
        summary = json.loads((runner.runs / "family" / "summary.json").read_text())
        right = (sub.iloc[:, 1] == solution.iloc[:, 1]).mean()
        assert summary["test_accuracy"] == pytest.approx(right)
        assert summary["test_accuracy"] > 0.3  # chance is 0.1
    else:
        assert len(classes) == 24 and set(sub.iloc[:, 1]) - set(SIGN) == set()
