"""Digit Recognizer end to end: `python run.py --help`, README.md.

The entry point: the command line -> a checked Config (src/cli.py), then the one dispatch below
to what the mode asks for. A mistake a user can make ends in one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from dataclasses import replace
from importlib.util import find_spec

from src import UserError
from src.cli import parse_args

# JAX would take most of a GPU's memory up front; trial processes sharing the card need it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "KERAS_BACKEND" not in os.environ and not find_spec("tensorflow") and find_spec("jax"):
    os.environ["KERAS_BACKEND"] = "jax"  # a GPU install (requirements-gpu.txt) has no TensorFlow

# (mode, --on-kaggle) -> the function that does it, imported only when asked for (a review
# needs no TensorFlow). src/cli.py refuses the pairs missing here.
COMMANDS = {
    ("train", False): "src.pipeline:train",
    ("search", False): "src.pipeline:search",
    ("report", False): "src.review.submit:review",
    ("scores", False): "src.review.submit:fetch_scores",
    ("runs", False): "src.review.runs:show_runs",
    ("train", True): "src.remote:train_on_kaggle",
    ("report", True): "src.remote:fetch_from_kaggle",
}


def command_line(argv: list[str]) -> str:
    """The command as typed, for the summary and the report, with any secret a URL carries
    masked."""
    from src.outputs.files import mask_secrets

    return shlex.join(["python", "run.py", *(mask_secrets(arg) for arg in argv)])


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on a user error (one line on stderr, no traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = replace(parse_args(argv), command=command_line(argv))
    module, _, function = COMMANDS[cfg.mode, cfg.on_kaggle].partition(":")
    try:
        getattr(importlib.import_module(module), function)(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished folds and trials are kept; add --run-name {cfg.run_name}"
            " to the same command to continue",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
