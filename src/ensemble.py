"""Predicting with fold models and combining them: probabilities averaged, then arg-maxed."""

from __future__ import annotations

import keras
import numpy as np

PREDICT_BATCH = 1024  # inference only: large batches amortise per-step overhead


def predict_proba(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 10) for raw uint8 images."""
    return model.predict(x.astype("float32"), batch_size=PREDICT_BATCH, verbose=0)


def average_predictions(probas: list[np.ndarray]) -> np.ndarray:
    """Mean of the fold models' probabilities: the ensemble's soft vote."""
    if not probas:
        raise ValueError("no predictions to average")
    return np.mean(np.stack(probas), axis=0)


def accuracy(labels: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose most probable class is the label."""
    return float(np.mean(proba.argmax(axis=1) == labels))
