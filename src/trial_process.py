"""The body of a search's trial process, started with `spawn` by `src/search.py`.

Kept free of Keras at import time: the new interpreter imports this module to find the target,
and only then, inside `main`, Keras loads with TensorFlow's native start-up log filtered.
"""

from __future__ import annotations


def main(cfg, data, pruner, worker: str) -> None:
    """Run one trial of the study (`src.objective.run_trials`) in this fresh process."""
    from src.quiet import import_keras

    import_keras()
    from src.objective import run_trials

    run_trials(cfg, data, pruner, worker)
