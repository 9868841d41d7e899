"""Several search workers on one Optuna study in a real PostgreSQL server.

`.ci/run` installs and starts PostgreSQL and exports DIGITS_TEST_POSTGRES_URL; without that
variable (a plain `pytest` on a machine without the server) these tests are skipped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from sqlalchemy.engine import make_url

from conftest import Runner, write_slice
from src import search
from src.config import ROOT

POSTGRES = os.environ.get("DIGITS_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="DIGITS_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL)"
)
TINY = ["--folds", "2", "--epochs", "1", "--search-epochs", "1", "--seed", "5", "--full-fits", "0"]
States = optuna.trial.TrialState


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, sample_frames):
    return write_slice(tmp_path_factory.mktemp("workers") / "data", sample_frames, 600, 100)


def start_worker(data_dir, tmp_path, study: str, cap: int) -> subprocess.Popen:
    cmd = [
        sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), *TINY,
        "--search-only", "--max-trials", str(cap), "--storage", POSTGRES, "--study-name", study,
        "--runs-dir", str(tmp_path / "runs"), "--submissions-dir", str(tmp_path / "subs"),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_id(proc: subprocess.Popen) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_two_workers_fill_a_capped_study_exactly_then_the_ensemble_uses_its_best(
    tmp_path, data_dir, capsys
):
    study_name = f"two-workers-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(data_dir, tmp_path, study_name, cap=6) for _ in range(2)]
    outputs = [finish(w) for w in workers]

    study = optuna.load_study(study_name=study_name, storage=POSTGRES)
    finished = study.get_trials(states=search.FINISHED)
    assert len(finished) == 6  # the cap over both workers, not 6 each
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # nothing lost, no number twice
    for t in study.trials:  # nothing left hanging, and a failure only for a raced-out trial
        assert t.state in search.FINISHED or t.user_attrs.get("surplus"), (t.number, t.state)
    assert {t.user_attrs["worker"] for t in finished} == {worker_id(w) for w in workers}
    drawn = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(drawn)) == len(drawn)  # no trial was run twice
    password = make_url(POSTGRES).password
    for out in outputs:
        assert "train the ensemble from the study's best trial" in out
        assert password not in out and ":***@" in out

    runner = Runner(tmp_path, capsys)
    code, out, err = runner(
        "--data-dir", str(data_dir), *TINY, "--trials", "0", "--study-name", study_name,
        "--storage", POSTGRES, "--run-name", "final",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((runner.runs / "final" / "config.json").read_text())
    assert config["params"] == study.best_trial.user_attrs["params"]
    assert (runner.subs / "submission.csv").exists()
    assert password not in out + err


def test_a_worker_killed_mid_trial_leaves_the_other_to_finish_the_study(tmp_path, data_dir):
    study_name = f"kill-worker-{uuid.uuid4().hex[:8]}"
    victim, survivor = (start_worker(data_dir, tmp_path, study_name, cap=4) for _ in range(2))
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.3)
            try:
                trials = optuna.load_study(study_name=study_name, storage=POSTGRES).trials
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
    study = optuna.load_study(study_name=study_name, storage=POSTGRES)
    assert study.trials[killed].state == States.FAIL  # marked failed by its missed heartbeats
    assert len(study.get_trials(states=search.FINISHED)) == 4  # the survivor filled the slot
    assert search.best_params(study) == study.best_trial.user_attrs["params"]  # usable
