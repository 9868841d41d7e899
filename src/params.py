"""Hyperparameters: the defaults for each architecture, as the dict `build_model` consumes.

One flat dict holds everything a trial can change (architecture, optimiser, schedule, batch size,
augmentation strengths), so a study's best parameters reproduce a model exactly.
"""

from __future__ import annotations

import json

from src.model import augment

DEFAULTS: dict[str, dict] = {
    # The project's default: BatchNorm CNN with strided convs (chosen by measurement, README).
    "cnn": {
        "model": "cnn",
        "filters": 32,
        "kernel_size": 3,
        "dense_units": 0,
        "dropout": 0.25,  # chosen over 0.4 by cross-validation (benchmarks/README)
        "batch_norm": True,
        "bn_momentum": 0.9,
        "optimizer": "adam",
        "learning_rate": 3e-3,
        "schedule": "cosine",
        "batch_size": 64,
        "label_smoothing": 0.0,
        **augment.DEFAULTS,
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
        "label_smoothing": 0.0,
        **augment.DEFAULTS,
    },
}


CHOICES = {"optimizer": ("adam", "rmsprop", "sgd"), "schedule": ("cosine", "plateau")}
# The values a model can train with: (lowest, whether it is allowed, highest, whether it is
# allowed); None: no bound. The search's ranges (src/search/study.py) lie inside them. kernel_size:
# the cnn's two strided blocks leave nothing to collapse above 5.
RANGES = {
    "filters": (1, True, None, True), "kernel_size": (1, True, 5, True),
    "dense_units": (0, True, None, True), "dropout": (0, True, 1, False),
    "bn_momentum": (0, True, 1, False), "learning_rate": (0, False, None, True),
    "batch_size": (1, True, None, True), "label_smoothing": (0, True, 1, False),
    "rotation_range": (0, True, 180, True), "zoom_range": (0, True, 1, False),
    "width_shift_range": (0, True, 1, False), "height_shift_range": (0, True, 1, False),
    "elastic_alpha": (0, True, None, True), "elastic_sigma": (0, False, None, True),
}  # fmt: skip


def check_range(key: str, value) -> None:
    """ValueError naming the allowed range when `value` lies outside `key`'s."""
    if key not in RANGES:
        return
    low, low_ok, high, high_ok = RANGES[key]
    above = value > low or (low_ok and value == low)
    below = high is None or value < high or (high_ok and value == high)
    if not (above and below):
        bounds = f"{'at least' if low_ok else 'above'} {low:g}"
        if high is not None:
            bounds += f" and {'at most' if high_ok else 'below'} {high:g}"
        raise ValueError(f"{key}={value!r}: expected {bounds}")


def default_params(model: str) -> dict:
    """A fresh copy of the default hyperparameters of architecture `model`."""
    return dict(DEFAULTS[model])


def parse_override(text: str, model: str) -> tuple[str, object]:
    """`KEY=VALUE` from `--set` -> (key, value) typed like the default; ValueError if not."""
    key, sep, raw = text.partition("=")
    defaults = DEFAULTS[model]
    if not sep or key not in defaults:
        known = ", ".join(sorted(k for k in defaults if k != "model"))
        raise ValueError(f"{text!r}: expected KEY=VALUE with KEY one of: {known}")
    if key == "model":
        raise ValueError("the architecture is chosen with --model, not --set")
    default = defaults[key]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare word: a string such as an optimizer name
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or float(value).is_integer())
        value = type(default)(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{key}={raw!r}: expected a {type(default).__name__} like {default!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"{key}={raw!r}: expected one of {', '.join(CHOICES[key])}")
    check_range(key, value)
    return key, value
