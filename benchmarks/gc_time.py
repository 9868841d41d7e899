"""Seconds a command spends in Python's garbage collector.

    python -m benchmarks.gc_time run.py --data-dir DIR --folds 5 ...

Runs the script with its arguments in this process, timing every collection (`gc.callbacks`),
and prints one line at exit: `RESULT gc_s=... collections=... full=...` (full: collections of
the oldest generation, the ones that walk every tracked object).
"""

from __future__ import annotations

import atexit
import gc
import runpy
import sys
import time

clock = {"since": 0.0, "seconds": 0.0, "collections": 0, "full": 0}


def timed(phase: str, info: dict) -> None:
    if phase == "start":
        clock["since"] = time.perf_counter()
        return
    clock["seconds"] += time.perf_counter() - clock["since"]
    clock["collections"] += 1
    clock["full"] += info["generation"] == 2


def report() -> None:
    print(f"RESULT gc_s={clock['seconds']:.2f} collections={clock['collections']}"
          f" full={clock['full']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    gc.callbacks.append(timed)
    atexit.register(report)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
