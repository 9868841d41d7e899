"""Stratified k-fold assignment and out-of-fold assembly."""

from __future__ import annotations

import numpy as np
import pytest

from src.train.folds import FoldResult, make_folds, out_of_fold


@pytest.fixture(scope="module")
def labels(sample_frames) -> np.ndarray:
    return sample_frames[0]["label"].to_numpy()


@pytest.mark.parametrize("k", [2, 5, 7])
def test_every_row_validated_exactly_once_and_folds_stratified(labels, k):
    folds = make_folds(labels, k, seed=0)
    assert folds.shape == labels.shape
    assert sorted(np.unique(folds)) == list(range(k))  # each row in exactly one fold
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    for digit in range(10):
        per_fold = np.bincount(folds[labels == digit], minlength=k)
        assert per_fold.max() - per_fold.min() <= 1, f"digit {digit} spread {per_fold}"


def test_folds_are_seeded_and_shuffled(labels):
    a, b, c = make_folds(labels, 5, 0), make_folds(labels, 5, 0), make_folds(labels, 5, 1)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.5
    assert not np.array_equal(np.sort(a), a)  # not contiguous blocks of the file


def fold_result(fold, idx, proba):
    return FoldResult(fold, np.array(idx), np.array(proba), np.zeros((1, 2)), 1.0, 1, 1, 0.0)


def test_out_of_fold_places_each_fold_on_its_rows():
    results = [
        fold_result(0, [0, 2], [[1, 0], [0, 1]]),
        fold_result(1, [1, 3], [[0.3, 0.7], [0.6, 0.4]]),
    ]
    oof = out_of_fold(results, 4)
    np.testing.assert_allclose(oof, [[1, 0], [0.3, 0.7], [0, 1], [0.6, 0.4]])


def test_out_of_fold_refuses_unvalidated_rows():
    with pytest.raises(ValueError, match="no fold"):
        out_of_fold([fold_result(0, [0, 1], [[1, 0], [0, 1]])], 3)
