"""Predicting with fold models and combining them: probabilities averaged, then arg-maxed."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from src.outputs.files import atomic_path

PREDICT_BATCH = 1024  # inference only: large batches amortise per-step overhead


def predict_proba(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) for raw uint8 images."""
    return model.predict(x.astype("float32"), batch_size=PREDICT_BATCH, verbose=0)


def average_predictions(probas: list[np.ndarray]) -> np.ndarray:
    """Mean of the fold models' probabilities: the ensemble's soft vote."""
    if not probas:
        raise ValueError("no predictions to average")
    return np.mean(np.stack(probas), axis=0)


def accuracy(labels: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose most probable class is the label."""
    return float(np.mean(proba.argmax(axis=1) == labels))


def save_ensemble(path: Path, oof: np.ndarray | None, test_proba: np.ndarray, data) -> None:
    """ensemble.npz: the probabilities, the labels (class indices), the layout (classes, test
    ids, submission columns), and the out-of-fold mistakes' images.

    The mistakes are ordered most confident first; with them the report needs no data files.
    Without folds (`oof` None) there are no out-of-fold probabilities and no known mistakes.
    """
    x_train, y_train = data.x_train, data.y_train
    arrays = {"test_proba": test_proba, "y_train": y_train, **data.layout.arrays()}
    wrong = np.empty(0, dtype=np.int64)
    if oof is not None:
        arrays["oof_proba"] = oof
        wrong = np.flatnonzero(oof.argmax(axis=1) != y_train)
        wrong = wrong[np.argsort(-oof[wrong].max(axis=1), kind="stable")]
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays, wrong_rows=wrong, wrong_images=x_train[wrong])
