"""Pseudo-labels: which test digits join the training rows, and with which labels."""

from __future__ import annotations

import numpy as np

from conftest import SAMPLE
from src.data.load import load_digits
from src.train.pseudo import choose, extend, pseudo_jobs


def test_the_sure_test_digits_join_the_training_rows_with_their_likeliest_class():
    data = load_digits(SAMPLE)
    proba = np.full((len(data.x_test), 10), 0.01, dtype=np.float32)
    proba[:, 3] = 0.91  # every digit a sure 3 ...
    proba[5, 3], proba[5, 7] = 0.5, 0.42  # ... but row 5, unsure
    proba[8, 3], proba[8, 4] = 0.01, 0.91  # and row 8, a sure 4
    chosen = choose(proba, 0.9)
    assert 5 not in chosen.rows and len(chosen.rows) == len(data.x_test) - 1
    extended = extend(data, chosen)
    n = len(data.y_train)
    assert len(extended.y_train) == n + len(chosen.rows)
    np.testing.assert_array_equal(extended.x_train[:n], data.x_train)  # the real rows first
    np.testing.assert_array_equal(extended.x_train[n:], data.x_test[chosen.rows])
    labels = extended.y_train[n:]
    assert labels[list(chosen.rows).index(8)] == 4 and np.sum(labels == 3) == len(labels) - 1
    assert extended.y_train.dtype == data.y_train.dtype
    np.testing.assert_array_equal(extended.x_test, data.x_test)  # test.csv is predicted again
    assert choose(proba, 0.95).rows.size == 0  # nothing that sure: no digit added


def test_each_second_round_model_trains_on_every_extended_row_with_its_own_seed():
    jobs = pseudo_jobs(1234, 2, seed=7)
    assert [j.name for j in jobs] == ["pseudo_1", "pseudo_2"]
    assert all(j.val_rows is None and len(j.train_rows) == 1234 for j in jobs)
    assert len({j.seed for j in jobs} | {7, 7 + 1000, 7 + 1001}) == 5  # apart from folds, fits
