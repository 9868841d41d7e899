"""Hyperparameters: the defaults for each architecture, as the dict `build_model` consumes.

One flat dict holds everything a trial can change (architecture, optimiser, schedule, batch size,
augmentation strengths), so a study's best parameters reproduce a model exactly.
"""

from __future__ import annotations

# Augmentation strengths use ImageDataGenerator's names and meaning: degrees, +-fraction of size.
AUGMENT_DEFAULTS = {
    "rotation_range": 10.0,
    "zoom_range": 0.1,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
}

DEFAULTS: dict[str, dict] = {
    # The project's default: BatchNorm CNN with strided convs (chosen by measurement, README).
    "cnn": {
        "model": "cnn",
        "filters": 32,
        "kernel_size": 3,
        "dense_units": 0,
        "dropout": 0.4,
        "batch_norm": True,
        "bn_momentum": 0.9,
        "optimizer": "adam",
        "learning_rate": 3e-3,
        "schedule": "cosine",
        "batch_size": 64,
        **AUGMENT_DEFAULTS,
    },
    # The write-up the project started from: 99.10% in under 5 minutes.
    "seed": {
        "model": "seed",
        "dense_units": 256,
        "dropout": 0.25,
        "batch_norm": False,
        "optimizer": "rmsprop",
        "learning_rate": 1e-3,
        "schedule": "plateau",
        "batch_size": 86,
        **AUGMENT_DEFAULTS,
    },
}


def default_params(model: str) -> dict:
    """A fresh copy of the default hyperparameters of architecture `model`."""
    return dict(DEFAULTS[model])
