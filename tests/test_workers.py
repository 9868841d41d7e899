"""Several search workers on one Optuna study in a real PostgreSQL server.

`.ci/run` installs and starts PostgreSQL, exports DIGITS_TEST_POSTGRES_URL and sets
DIGITS_REQUIRE_POSTGRES=1, so in CI these tests run or fail. Without the URL (a plain `pytest`
on a machine without the server) they are skipped. Each test gets its own empty PostgreSQL
schema, so every test starts its workers on a database without Optuna's tables.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from conftest import NARROW, Runner, write_slice
from src.config import ROOT, Config
from src.search import study as studies
from src.search.storage import sql_engine, with_driver

SERVER = os.environ.get("DIGITS_TEST_POSTGRES_URL", "")
if os.environ.get("DIGITS_REQUIRE_POSTGRES") and not SERVER:
    raise RuntimeError("DIGITS_REQUIRE_POSTGRES is set but DIGITS_TEST_POSTGRES_URL is not")
pytestmark = pytest.mark.skipif(
    not SERVER, reason="DIGITS_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL)"
)
TINY = ["--folds", "2", "--epochs", "1", "--search-epochs", "1", "--seed", "5", "--full-fits", "0",
        *NARROW]  # fmt: skip
States = optuna.trial.TrialState


@pytest.fixture
def postgres():
    """The test server's URL, pointed at a new empty schema (dropped afterwards)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sql_engine(SERVER)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in SERVER else "?"
    yield f"{SERVER}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, sample_frames):
    return write_slice(tmp_path_factory.mktemp("workers") / "data", sample_frames, 600, 100)


def start_worker(data_dir, tmp_path, storage: str, study: str, cap: int) -> subprocess.Popen:
    cmd = [
        sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), *TINY,
        "--search-only", "--trials", str(cap), "--storage", storage, "--study-name", study,
        "--runs-dir", str(tmp_path / "runs"), "--submissions-dir", str(tmp_path / "subs"),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_id(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def open_when_released(storage: str, barrier, results) -> None:
    """A worker's start: wait for the others, then open the study at the same moment."""
    barrier.wait()
    try:
        studies.open_study(Config(storage=storage, study_name="together"), create=True)
        results.put("ok")
    except BaseException as e:  # noqa: BLE001 - the test reports what each worker died of
        results.put(f"{type(e).__name__}: {e}")


def test_workers_starting_together_on_an_empty_database_all_come_up(postgres):
    """8 processes create Optuna's schema and one study at the same instant: none fails.

    Without the schema lock (src/search/storage.py) most of them die on PostgreSQL's
    `pg_type_typname_nsp_index` or `type ... already exists`.
    """
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(8), spawn.Queue()
    workers = [spawn.Process(target=open_when_released, args=(postgres, barrier, results))
               for _ in range(8)]  # fmt: skip
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert outcomes == ["ok"] * 8
    study = optuna.load_study(study_name="together", storage=with_driver(postgres))
    assert [t.state for t in study.trials] == [States.WAITING]  # the defaults, enqueued once


def test_two_workers_fill_a_capped_study_exactly_then_the_ensemble_uses_its_best(
    tmp_path, data_dir, capsys, postgres
):
    """Started together on an empty database (the README's multi-machine recipe)."""
    study_name = f"two-workers-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(data_dir, tmp_path, postgres, study_name, cap=4) for _ in range(2)]
    outputs = [finish(w) for w in workers]

    study = optuna.load_study(study_name=study_name, storage=with_driver(postgres))
    finished = study.get_trials(states=studies.FINISHED)
    assert len(finished) == 4  # the cap over both workers, not 4 each
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # nothing lost, no number twice
    for t in study.trials:  # nothing left hanging, and a failure only for a raced-out trial
        assert t.state in studies.FINISHED or t.user_attrs.get("surplus"), (t.number, t.state)
    assert {t.user_attrs["worker"] for t in finished} == {worker_id(w) for w in workers}
    drawn = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(drawn)) == len(drawn)  # no trial was run twice
    password = make_url(postgres).password
    for out in outputs:
        assert "train the ensemble from the study's best trial" in out
        assert password not in out and ":***@" in out

    runner = Runner(tmp_path, capsys)
    code, out, err = runner(
        "--data-dir", str(data_dir), *TINY, "--trials", "0", "--study-name", study_name,
        "--storage", postgres, "--run-name", "final",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((runner.runs / "final" / "config.json").read_text())
    assert config["params"] == study.best_trial.user_attrs["params"]
    assert (runner.subs / "submission.csv").exists()
    assert password not in out + err
    for saved in ("summary.json", "report.html", "config.json", "study.json"):
        text = (runner.runs / "final" / saved).read_text()
        assert password not in text, saved
    assert ":***@" in (runner.runs / "final" / "summary.json").read_text()  # the command, masked


def test_a_worker_killed_mid_trial_leaves_the_other_to_finish_the_study(
    tmp_path, data_dir, postgres
):
    study_name = f"kill-worker-{uuid.uuid4().hex[:8]}"
    victim, survivor = (start_worker(data_dir, tmp_path, postgres, study_name, cap=4)
                        for _ in range(2))  # fmt: skip
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.3)
            try:
                trials = optuna.load_study(
                    study_name=study_name, storage=with_driver(postgres)
                ).trials
            except KeyError:
                continue  # not created yet
            running = [t for t in trials if t.state == States.RUNNING
                       and t.user_attrs.get("worker") == worker_id(victim)]  # fmt: skip
            if running:
                killed = running[0].number
                os.kill(victim.pid, signal.SIGKILL)  # its trial process dies with it
    finally:
        victim.kill()
        victim.communicate()
    assert killed is not None, "the victim never ran a trial before the deadline"

    finish(survivor)
    study = optuna.load_study(study_name=study_name, storage=with_driver(postgres))
    assert study.trials[killed].state == States.FAIL  # marked failed by its missed heartbeats
    assert len(study.get_trials(states=studies.FINISHED)) == 4  # the survivor filled the slot
    assert studies.best_params(study) == study.best_trial.user_attrs["params"]  # usable


def test_a_wrong_password_is_one_line_before_training(tmp_path, data_dir, capsys, postgres):
    url = make_url(postgres)
    wrong = url.set(password="not-the-password").render_as_string(hide_password=False)
    runner = Runner(tmp_path, capsys)
    code, out, err = runner("--data-dir", str(data_dir), *TINY, "--trials", "2", "--storage",
                            wrong, "--run-name", "never")  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "--storage postgresql://digits:***@" in err and "cannot open" in err
    assert "not-the-password" not in out + err
    assert runner.written() == [] and not runner.runs.exists()  # no lock, no folder


def test_workers_started_together_fill_the_study_exactly_and_let_go(tmp_path, data_dir):
    """3 --search-only workers at the same instant on an empty database, a study of 5 trials:
    exactly 5 finish, all with their own parameters, no worker fails, and every database
    connection is given back when they end (tests/stress_workers.py runs 8 workers x 16
    trials, on an empty and on an existing database)."""
    from stress_workers import run_workers

    r = run_workers(SERVER, data_dir, workers=3, trials=5, out=tmp_path, extra=tuple(NARROW))
    assert (r["finished"], r["distinct_params"], r["exit_codes"], r["errors"]) == (5, 5, [0], 0)
    assert r["connections_peak"] >= r["connections_before"] + 3  # every worker was connected
    assert r["connections_after"] == r["connections_before"]
