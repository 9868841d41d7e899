"""Many search workers started at the same instant on one PostgreSQL study: does the study end
with exactly its total of trials, distinct parameters, no errors, and every connection given
back? And what do the workers cost the database?

    python -m tests.stress_workers --postgres URL [--workers 8] [--trials 16] [--rows 600]

URL defaults to $DIGITS_TEST_POSTGRES_URL. Each repetition gets a new empty schema (an empty
database, as the README's multi-machine recipe starts from), then N `run.py --search-only`
workers start together, then N more on a second study in the same schema (a database that has
Optuna's tables); `pg_stat_activity` is sampled every 0.2 s for the connections of the URL's
user, before, during and after. Prints, for each, `RESULT database=empty|existing workers=...
trials=... finished=... distinct_params=... errors=... connections_before=...
connections_peak=... connections_after=... commits=... seconds=...`. tests/test_workers.py runs
the first with the test server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import sqlalchemy
from sqlalchemy.engine import make_url

from src.config import ROOT
from src.outputs.files import mask_secrets
from src.search.storage import sql_engine, with_driver
from src.search.study import FINISHED

ERRORS = ("Traceback", "has already finished and can not be updated", "UniqueViolation")


def in_new_schema(server: str) -> tuple[str, str]:
    """(URL pointed at a new empty schema, its name)."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = sql_engine(server)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(server: str, schema: str) -> None:
    engine = sql_engine(server)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


class Connections:
    """Samples the user's connections to the database (other than its own) in a thread."""

    def __init__(self, server: str):
        url = make_url(server)
        self.user, self.database = url.username, url.database
        self.engine = sql_engine(server)
        self.samples: list[int] = []
        self.stop = threading.Event()

    def count(self) -> int:
        query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = :user AND datname = :db"
            " AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as connection:
            return int(
                connection.execute(query, {"user": self.user, "db": self.database}).scalar()
            )

    def commits(self) -> int:
        query = sqlalchemy.text("SELECT xact_commit FROM pg_stat_database WHERE datname = :db")
        with self.engine.connect() as connection:
            return int(connection.execute(query, {"db": self.database}).scalar())

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            self.samples.append(self.count())

    def __enter__(self):
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run_workers(server: str, data_dir: Path, workers: int, trials: int, out: Path,
                storage: str = "", study_name: str = "many",
                extra: tuple = ()) -> dict:  # fmt: skip
    """Start `workers` search workers together on a study in `storage` (default: a new empty
    schema, dropped afterwards), with `extra` run.py flags; what happened, as a dict."""
    schema = ""
    if not storage:
        storage, schema = in_new_schema(server)
    watch = Connections(server)
    before, commits = watch.count(), watch.commits()
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), "--folds", "2",
           "--search-epochs", "1", "--search-only", "--trials", str(trials), "--storage",
           storage, "--study-name", study_name, "--runs-dir", str(out / "runs"),
           "--submissions-dir", str(out / "subs"), *extra]  # fmt: skip
    start = time.perf_counter()
    with watch:
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(workers)]  # fmt: skip
        logs = [p.communicate(timeout=1800)[0] for p in procs]
    seconds = time.perf_counter() - start
    time.sleep(1.0)  # let the server notice the last disconnections
    after = watch.count()
    study = optuna.load_study(study_name=study_name, storage=with_driver(storage))
    finished = study.get_trials(states=FINISHED)
    drawn = {json.dumps(t.params, sort_keys=True) for t in finished}
    result = {
        "workers": workers,
        "trials": trials,
        "finished": len(finished),
        "distinct_params": len(drawn),
        "exit_codes": sorted({p.returncode for p in procs}),
        "errors": sum(log.count(e) for log in logs for e in ERRORS),
        "connections_before": before,
        "connections_peak": max(watch.samples, default=before),
        "connections_after": after,
        "commits": watch.commits() - commits,
        "seconds": round(seconds, 1),
    }
    if schema:
        drop_schema(server, schema)
    watch.engine.dispose()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--postgres", default=os.environ.get("DIGITS_TEST_POSTGRES_URL", ""))
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--rows", type=int, default=600)
    a = p.parse_args()
    if not a.postgres:
        p.error("--postgres URL (or DIGITS_TEST_POSTGRES_URL) is needed")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        sample = ROOT / "input" / "sample"
        pd.read_csv(sample / "train.csv.gz").iloc[: a.rows].to_csv(data / "train.csv", index=False)
        pd.read_csv(sample / "test.csv.gz").iloc[:100].to_csv(data / "test.csv", index=False)
        print(f"command: python -m tests.stress_workers --postgres {mask_secrets(a.postgres)}"
              f" --workers {a.workers} --trials {a.trials} --rows {a.rows}",
              flush=True)  # fmt: skip
        storage, schema = in_new_schema(a.postgres)
        try:
            for database in ("empty", "existing"):  # the second finds Optuna's tables there
                r = run_workers(a.postgres, data, a.workers, a.trials, Path(tmp), storage,
                                f"many-{database}")  # fmt: skip
                codes = ",".join(map(str, r.pop("exit_codes")))
                fields = " ".join(f"{k}={v}" for k, v in r.items())
                print(f"RESULT database={database} {fields} exit_codes={codes}", flush=True)
        finally:
            drop_schema(a.postgres, schema)


if __name__ == "__main__":
    main()
