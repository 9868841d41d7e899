"""Digit Recognizer end to end: `python run.py --help`, README.md.

The entry point: the command line -> Config (src/cli.py), then a run (src/pipeline.py) or the
review of a finished one (src/review/). A mistake a user can make ends in one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import shlex
import sys
from importlib.util import find_spec

from src import UserError
from src.cli import parse_args

# JAX would take most of a GPU's memory up front; trial processes sharing the card need it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "KERAS_BACKEND" not in os.environ and not find_spec("tensorflow") and find_spec("jax"):
    os.environ["KERAS_BACKEND"] = "jax"  # a GPU install (requirements-gpu.txt) has no TensorFlow


def command_line(argv: list[str]) -> str:
    """The command as typed, for the summary and the report, with any storage password masked."""
    from src.search.storage import mask_password

    masked = [mask_password(arg) if "://" in arg else arg for arg in argv]
    return shlex.join(["python", "run.py", *masked])


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on a user error (one line on stderr, no traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = parse_args(argv)
    try:
        if cfg.on_kaggle:  # train (or fetch) as a Kaggle notebook
            from src.remote import run_on_kaggle

            run_on_kaggle(cfg)
        elif cfg.mode == "runs":
            from src.review.runs import show_runs

            show_runs(cfg)
        elif cfg.mode == "scores":
            from src.review.submit import fetch_scores

            fetch_scores(cfg)
        elif cfg.mode == "report":
            from src.review.submit import review

            review(cfg)
        else:  # train, or be a search worker
            from src.pipeline import run

            run(cfg, command_line(argv))
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
