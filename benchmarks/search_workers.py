"""Search workers and storages: 1 vs 2 worker processes, and PostgreSQL vs SQLite per trial.

    python -m benchmarks.search_workers [--trials 8] [--search-epochs 2] [--postgres URL]

1. Wall time of a fixed-budget search (`--trials` trials, the real `run.py --search-only`
   workers on the bundled sample) run by one worker, by two started together on one study, and
   by one worker with `--n-jobs 2` (two trial processes at a time).
2. Storage overhead per trial: the storage calls of a real trial (ask, the 13 suggestions, the
   params attribute, one report per epoch, tell) with no training, timed on SQLite and, when
   `--postgres` (or DIGITS_TEST_POSTGRES_URL) gives a server, on PostgreSQL.
Ends with `RESULT one_worker_s=... two_workers_s=... speedup=... sqlite_ms_per_trial=...
postgres_ms_per_trial=...`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import optuna

from src.config import ROOT, Config
from src.outputs.files import mask_secrets
from src.search import study as studies


def search_wall_time(workers: int, args, storage: str, tmp: Path, n_jobs: int = 1) -> float:
    study = f"bench-{workers}w{n_jobs}j-{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable, str(ROOT / "run.py"), "--data-dir", str(args.data_dir),
        "--search-only", "--trials", str(args.trials), "--search-epochs",
        str(args.search_epochs), "--storage", storage, "--study-name", study,
        "--runs-dir", str(tmp / "runs"), "--n-jobs", str(n_jobs),
    ]  # fmt: skip
    start = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    if any(p.wait() for p in procs):
        sys.exit(f"a worker failed: {' '.join(cmd)}")
    seconds = time.perf_counter() - start
    finished = len(optuna.load_study(study_name=study, storage=storage).get_trials(
        states=studies.FINISHED))  # fmt: skip
    print(f"{workers} worker(s), --n-jobs {n_jobs}: {args.trials} trials in {seconds:.1f} s"
          f" ({finished} finished)", flush=True)  # fmt: skip
    return seconds


REPORTS = Config().search_epochs  # one report per epoch of a default trial (one fold)


def storage_ms_per_trial(storage: str, trials: int, epochs: int) -> float:
    """Milliseconds of storage traffic per trial, as a real trial makes it, minus the training."""
    cfg = Config(storage=storage, study_name=f"overhead-{uuid.uuid4().hex[:8]}", trials=trials)
    study = studies.open_study(cfg, create=True, pruner=optuna.pruners.NopPruner())
    warnings.filterwarnings("ignore", "Heartbeat of storage")  # ask/tell: no heartbeat thread
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        trial.set_user_attr("params", studies.suggest_params(trial))
        for step in range(epochs):
            trial.report(0.9, step)
            trial.should_prune()
        study.tell(trial, 0.9)
    return (time.perf_counter() - start) / trials * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--search-epochs", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=ROOT / "input" / "sample")
    p.add_argument("--postgres", default=os.environ.get("DIGITS_TEST_POSTGRES_URL", ""))
    p.add_argument("--overhead-trials", type=int, default=50)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"command: python -m benchmarks.search_workers --trials {args.trials}"
          f" --search-epochs {args.search_epochs}  (cores: {os.cpu_count()})")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sqlite = f"sqlite:///{tmp / 'bench.db'}"
        workers_storage = args.postgres or sqlite
        print(f"workers share: {mask_secrets(workers_storage)}")
        one = search_wall_time(1, args, workers_storage, tmp)
        two = search_wall_time(2, args, workers_storage, tmp)
        jobs = search_wall_time(1, args, workers_storage, tmp, n_jobs=2)
        print(f"2 workers vs 1: {one / two:.2f}x as fast; --n-jobs 2 vs 1: {one / jobs:.2f}x")

        sqlite_ms = storage_ms_per_trial(sqlite, args.overhead_trials, REPORTS)
        print(f"storage per trial, SQLite: {sqlite_ms:.1f} ms")
        result = (f"RESULT one_worker_s={one:.1f} two_workers_s={two:.1f} speedup={one / two:.2f}"
                  f" n_jobs_2_s={jobs:.1f} n_jobs_speedup={one / jobs:.2f}"
                  f" sqlite_ms_per_trial={sqlite_ms:.1f}")  # fmt: skip
        if args.postgres:
            pg_ms = storage_ms_per_trial(args.postgres, args.overhead_trials, REPORTS)
            print(f"storage per trial, PostgreSQL: {pg_ms:.1f} ms")
            result += f" postgres_ms_per_trial={pg_ms:.1f}"
    print(result)


if __name__ == "__main__":
    main()
