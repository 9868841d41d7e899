"""Keras imported with TensorFlow's native start-up log filtered out.

TensorFlow's C++ side writes straight to file descriptor 2 while it loads and looks for a GPU:
an absl notice, INFO lines (oneDNN, "Could not find cuda drivers") and, on a machine without a
GPU, `E0000 ... failed call to cuInit`, which reads like a failure. `TF_CPP_MIN_LOG_LEVEL` no
longer silences them (TensorFlow 2.21 logs through absl). While Keras loads and the backend
lists its devices, descriptor 2 goes to a temporary file; afterwards every line of it that is
not such noise is written back, so real warnings and errors still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:.]+ +\d+ \S+\] "  # absl INFO lines
    r"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit)"
)
RECORD = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+\] |WARNING: )")  # a new log record starts


@contextmanager
def native_log_filtered() -> Iterator[None]:
    """Hold back what native code writes to stderr; write back all but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = _without_noise(held.read().decode(errors="replace").splitlines(True))
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _without_noise(lines: list[str]) -> list[str]:
    """Drop the noise records, with their continuation lines (a record may span several:
    the CPU-instructions notice does)."""
    kept, dropping = [], False
    for line in lines:
        if NOISE.match(line):
            dropping = True
        elif RECORD.match(line):
            dropping = False
        if not dropping:
            kept.append(line)
    return kept


def import_keras():
    """Import Keras (and its backend, and the backend's device list) quietly; return it."""
    with native_log_filtered():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # where cuInit runs
    return keras
