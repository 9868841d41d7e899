"""Pseudo-labels: a second round of models that also train on the test digits the first
round's ensemble is sure of.

The first round (the folds and full fits) predicts test.csv as the submission would; every test
digit whose averaged probability for its likeliest class is at least the threshold joins the
training rows, with that class as its label. The second round then trains full-data models
(`pseudo_1`, `pseudo_2`, ...) on the training rows plus those digits, and the submission
averages them instead. test.csv's labels are never read: the images are the competition's
unlabelled test set, as any Kaggle competitor may use them. Gains and costs:
benchmarks/README.md, "Kaggle-size holdout".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from src.data.load import Digits
from src.train.engine import Job

PSEUDO_SEED = 2000  # pseudo-label fit i trains with seed + 2000 + i (full fits: + 1000 + i)


@dataclass(frozen=True)
class PseudoLabels:
    """The test digits the second round adds: which rows, and the class each was given."""

    threshold: float
    rows: np.ndarray  # rows of test.csv
    labels: np.ndarray  # class indices, the first round's arg-max

    def describe(self, n_test: int) -> str:
        return (f"{len(self.rows)} of {n_test} test digits at probability >="
                f" {self.threshold:g}")  # fmt: skip


def choose(test_proba: np.ndarray, threshold: float) -> PseudoLabels:
    """The test rows whose likeliest class has at least `threshold` of the probability."""
    rows = np.flatnonzero(test_proba.max(axis=1) >= threshold)
    return PseudoLabels(threshold, rows, test_proba[rows].argmax(axis=1).astype(np.int64))


def extend(data: Digits, chosen: PseudoLabels) -> Digits:
    """`data` with the chosen test digits appended to its training rows, labelled as chosen;
    test.csv itself unchanged (the second round predicts every test digit again)."""
    return replace(
        data,
        x_train=np.concatenate([data.x_train, data.x_test[chosen.rows]]),
        y_train=np.concatenate([data.y_train, chosen.labels.astype(data.y_train.dtype)]),
    )


def pseudo_jobs(n_rows: int, n: int, seed: int) -> list[Job]:
    """N models on every row of the extended training set, nothing held out."""
    rows = np.arange(n_rows)
    return [Job("pseudo", i + 1, rows, None, seed + PSEUDO_SEED + i) for i in range(n)]
