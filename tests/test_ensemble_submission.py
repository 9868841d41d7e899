"""Ensemble averaging and the submission file: format checks and atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.load import Layout
from src.outputs.submission import (
    check_submission,
    digit_recognizer,
    make_submission,
    submit_command,
    write_submission,
)
from src.train.ensemble import accuracy, average_predictions


def dr_submission(labels) -> pd.DataFrame:
    """Digit Recognizer's submission for predicted digits (indices = digits there)."""
    return make_submission(np.asarray(labels), digit_recognizer(len(labels)))


def test_average_is_the_soft_vote_not_a_majority_vote():
    # Two confident-but-wrong models lose to one very confident right one only by soft voting.
    a = np.array([[0.6, 0.4]])
    b = np.array([[0.6, 0.4]])
    c = np.array([[0.0, 1.0]])
    mean = average_predictions([a, b, c])
    np.testing.assert_allclose(mean, [[0.4, 0.6]])
    assert mean.argmax(axis=1)[0] == 1


def test_average_keeps_rows_and_sums_to_one():
    rng = np.random.default_rng(0)
    probas = [rng.dirichlet(np.ones(10), size=7) for _ in range(5)]
    mean = average_predictions(probas)
    assert mean.shape == (7, 10)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    np.testing.assert_allclose(mean[3], np.mean([p[3] for p in probas], axis=0))


def test_accuracy_counts_argmax_hits():
    proba = np.eye(10)[[1, 2, 3, 4]]
    assert accuracy(np.array([1, 2, 0, 4]), proba) == 0.75


def test_submission_format():
    sub = dr_submission([7, 2, 1])
    assert list(sub.columns) == ["ImageId", "Label"]
    assert sub["ImageId"].tolist() == [1, 2, 3] and sub["Label"].tolist() == [7, 2, 1]
    check_submission(sub, digit_recognizer(3))


def test_another_layout_maps_class_indices_to_its_labels_and_ids():
    """Kannada-MNIST-like ids from 0, id,label columns; 24 letter classes with a gap at 9."""
    letters = np.array([c for c in range(25) if c != 9])
    layout = Layout("id", "label", np.array([0, 1, 2]), letters)
    sub = make_submission(np.array([0, 9, 23]), layout)
    assert list(sub.columns) == ["id", "label"]
    assert sub["id"].tolist() == [0, 1, 2] and sub["label"].tolist() == [0, 10, 24]
    check_submission(sub, layout)
    with pytest.raises(ValueError, match="labels"):
        check_submission(sub.assign(label=[0, 9, 24]), layout)  # 9 is no class here


@pytest.mark.parametrize(
    "sub, match",
    [
        (dr_submission([1, 2]), "rows"),
        (dr_submission([1, 2, 3]).iloc[::-1], "ImageIds are not test.csv's"),
        (dr_submission([1, 2, 3]).assign(Label=[1, 2, 10]), "labels"),
        (dr_submission([1, 2, 3]).assign(Label=[1.5, 2, 3]), "labels"),
        (dr_submission([1, 2, 3]).assign(ImageId=[1, 2, 4]), "ImageIds are not test.csv's"),
        (dr_submission([1, 2, 3]).rename(columns={"Label": "label"}), "col"),
    ],
)
def test_check_rejects_what_kaggle_would(sub, match):
    with pytest.raises(ValueError, match=match):
        check_submission(sub, digit_recognizer(3))


def test_write_is_atomic_and_copies_match(tmp_path):
    sub = dr_submission(np.arange(10) % 10)
    main, copy = tmp_path / "subs" / "submission.csv", tmp_path / "subs" / "run-1.csv"
    write_submission(sub, main, copies=[copy])
    assert main.read_bytes() == copy.read_bytes()
    assert main.read_text().splitlines()[:2] == ["ImageId,Label", "1,0"]
    pd.testing.assert_frame_equal(pd.read_csv(main), sub)
    assert sorted(p.name for p in main.parent.iterdir()) == ["run-1.csv", "submission.csv"]


def test_failed_write_leaves_previous_file(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("previous\n")

    class Broken(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            super().to_csv(*args, **kwargs)
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_submission(Broken(dr_submission([1])), path)
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]


def test_submit_command_is_the_official_cli_call():
    assert submit_command("submissions/submission.csv", "run a: OOF 0.99") == [
        "kaggle", "competitions", "submit", "-c", "digit-recognizer",
        "-f", "submissions/submission.csv", "-m", "run a: OOF 0.99",
    ]  # fmt: skip
