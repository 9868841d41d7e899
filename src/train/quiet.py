"""Keras imported with TensorFlow's native start-up log filtered out.

TensorFlow's C++ side writes straight to file descriptor 2 while it loads and looks for a GPU:
an absl notice, INFO lines (oneDNN, "Could not find cuda drivers") and, on a machine without a
GPU, `E0000 ... failed call to cuInit`, which reads like a failure (TensorFlow 2.19 adds errors
about CUDA plugins registered twice). `TF_CPP_MIN_LOG_LEVEL` no longer silences them
(TensorFlow 2.21 logs through absl). While Keras loads and the backend lists its devices,
descriptor 2 goes to a temporary file; afterwards every line of it that is not such noise is
written back, so real warnings and errors still show. Afterwards the imported objects are
frozen out of the garbage collector's generations (see `import_keras`).
"""

from __future__ import annotations

import gc
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# A native log record's head, in absl's format (TensorFlow 2.21: `E0000 00:00:1795.. 11586
# file.cc:52] `) or TensorFlow's own (2.19, the Kaggle image's: `2026-11-26 16:36:02.141811: E
# path/file.cc:51] `).
HEAD = r"(?:{level}\d{{4}} [\d:.]+ +\d+ |\d{{4}}-\d\d-\d\d [\d:.]+: {level} )\S+\] "
ANY, INFO = HEAD.format(level="[IWEF]"), HEAD.format(level="I")
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rf"|{INFO}"  # INFO lines
    rf"|{ANY}(?:failed call to cuInit"  # no GPU on this machine
    # TensorFlow 2.19's CUDA plugins, registered twice at import, and XLA's twin notice
    r"|Unable to register cu\w+ factory: Attempting to register factory for plugin \w+ when"
    r" one has already been registered|computation placer already registered))"
)
RECORD = re.compile(rf"^({ANY}|WARNING: )")  # a new log record starts


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
    """Import Keras (and its backend, and the backend's device list) quietly; return it.

    Then everything alive is moved out of the garbage collector's sight (`gc.freeze`): the
    imported modules live as long as the process, and without them in the oldest generation the
    full collections while models are built and programs traced take a fraction of the time.
    """
    with native_log_filtered():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # where cuInit runs
    gc.freeze()
    return keras
