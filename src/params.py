"""Hyperparameters: one table of every value a model trains with, from which the defaults of
each architecture, `--set`'s checks and the search space all derive.

One flat dict per model holds everything a trial can change (architecture, optimiser, schedule,
batch size, augmentation strengths), so a study's best parameters reproduce a model exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ARCHITECTURES = ("cnn", "seed")  # the project's default; the write-up it started from


@dataclass(frozen=True)
class Range:
    """The numbers a hyperparameter may take; None: no bound on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: `low` itself is not allowed
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = self.low is None or value > self.low or (not self.low_open and value == self.low)
        below = (
            self.high is None or value < self.high or (not self.high_open and value == self.high)
        )
        return above and below

    def __str__(self) -> str:
        def shown(bound: float) -> str:
            return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

        bounds = []
        if self.low is not None:
            bounds.append(f"{'above' if self.low_open else 'at least'} {shown(self.low)}")
        if self.high is not None:
            bounds.append(f"{'below' if self.high_open else 'at most'} {shown(self.high)}")
        return " and ".join(bounds)


@dataclass(frozen=True)
class Param:
    """One row: the default per architecture, the values allowed, what the search draws."""

    cnn: object  # the default of the project's CNN
    seed: object = None  # the default of the write-up's net; None: not a knob of that net
    allowed: Range | tuple[str, ...] | None = None  # a Range, the choices, or None (a bool)
    search: tuple | None = None  # ("choice", values) | ("uniform" | "log", low, high) | None
    augment: bool = False  # read by the augmentation, not by the network or the optimiser


def choice(*values) -> tuple:
    return ("choice", values)


def uniform(low: float, high: float) -> tuple:
    return ("uniform", low, high)


def log_uniform(low: float, high: float) -> tuple:
    return ("log", low, high)


UNIT = Range(0, 1, high_open=True)  # a fraction: 0 allowed, 1 not
# The search draws these in the table's order (a seeded search depends on it). A row added
# later is off at a falsy value (0, False): a run folder recorded before it existed reads as
# trained with it off, and resumes while it is (src/outputs/run_folder.py, `changes`).
PARAMS: dict[str, Param] = {
    "filters": Param(32, None, Range(1), choice(16, 24, 32, 48)),
    # the cnn's two strided blocks leave nothing for a kernel above 5 to collapse
    "kernel_size": Param(3, None, Range(1, 5), choice(3, 5)),
    "dense_units": Param(0, 256, Range(0), choice(0, 128, 256)),
    "dropout": Param(0.25, 0.25, UNIT, uniform(0.1, 0.5)),  # 0.25: by cross-validation
    "batch_norm": Param(True, False, None, choice(True, False)),
    "bn_momentum": Param(0.9, None, UNIT),  # Keras's 0.99 predicts at chance on small runs
    "optimizer": Param(
        "adam", "rmsprop", ("adam", "rmsprop", "sgd"), choice("adam", "rmsprop", "sgd")
    ),  # fmt: skip
    "learning_rate": Param(3e-3, 1e-3, Range(0, low_open=True), log_uniform(3e-4, 3e-2)),
    "schedule": Param(
        "cosine", "plateau", ("cosine", "plateau", "exponential"), choice("cosine", "plateau")
    ),  # fmt: skip
    "batch_size": Param(64, 86, Range(1), choice(32, 64, 128)),
    "label_smoothing": Param(0.0, 0.0, UNIT),
    # A moving average of the weights (Keras's `use_ema`), what a full fit ends with; 0 = off.
    "ema_momentum": Param(0.0, 0.0, UNIT),
    # Decoupled weight decay (Keras optimizers' `weight_decay`): each step every kernel shrinks
    # by learning rate x weight_decay of itself; BatchNorm's scale and offset and the biases
    # are left alone. 0 = off.
    "weight_decay": Param(0.0, 0.0, Range(0)),
    # Augmentation, in ImageDataGenerator's names and meaning: degrees, +-fraction of the size.
    "rotation_range": Param(10.0, 10.0, Range(0, 180), uniform(0.0, 20.0), augment=True),
    "zoom_range": Param(0.1, 0.1, UNIT, uniform(0.0, 0.2), augment=True),
    "width_shift_range": Param(0.1, 0.1, UNIT, uniform(0.0, 0.2), augment=True),
    "height_shift_range": Param(0.1, 0.1, UNIT, uniform(0.0, 0.2), augment=True),
    # Elastic distortion (Simard et al. 2003), the `affine` backend only: alpha scales a
    # displacement field smoothed over sigma pixels; 0 = off.
    "elastic_alpha": Param(0.0, 0.0, Range(0), augment=True),
    "elastic_sigma": Param(4.0, 4.0, Range(0, low_open=True), augment=True),
    # The last N epochs train on the digits as they are, unwarped (every epoch, if N >= the
    # run's epochs); 0 = every epoch augmented. The cnn's: by the Kaggle-size holdout.
    "clean_epochs": Param(2, 0, Range(0), augment=True),
}

DEFAULTS: dict[str, dict] = {
    arch: {"model": arch, **{k: getattr(p, arch) for k, p in PARAMS.items()
                             if getattr(p, arch) is not None}}
    for arch in ARCHITECTURES
}  # fmt: skip
SEARCHED = tuple(k for k, p in PARAMS.items() if p.search)  # the keys a trial draws
AUGMENT_KEYS = tuple(k for k, p in PARAMS.items() if p.augment)


def check_value(key: str, value) -> None:
    """ValueError naming what is allowed when `value` is not among `key`'s allowed values."""
    allowed = PARAMS[key].allowed
    if isinstance(allowed, Range) and not allowed.holds(value):
        raise ValueError(f"{key}={value!r}: expected {allowed}")
    if isinstance(allowed, tuple) and value not in allowed:
        raise ValueError(f"{key}={value!r}: expected one of {', '.join(allowed)}")


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
    check_value(key, value)
    return key, value
