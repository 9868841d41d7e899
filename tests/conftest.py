"""Shared fixtures: small real data cut from the bundled sample, and a way to call run.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run
from src.config import ROOT
from src.review import kaggle_cli

# Under pytest-xdist the workers share the machine's cores: each worker's TensorFlow, and the
# run.py and trial processes it starts (they inherit the environment), gets its share of them
# rather than a thread pool as large as the machine, which the other workers' pools oversubscribe.
# Set here, before any test module imports Keras (and TensorFlow with it).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _share = max(1, (_cores or 1) // _WORKERS)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(_share))

SAMPLE = ROOT / "input" / "sample"
# The network the tests train: the default CNN at a quarter of its width (`filters` is a --set
# knob like any other), a fraction of its cost; the tests of the architectures themselves
# build them unchanged.
NARROW = ["--set", "filters=8"]


@pytest.fixture(autouse=True)
def float32_policy():
    """Each test starts in Keras's default float32: run.py called in-process sets the global
    dtype policy for its device (mixed_bfloat16 on a CPU with AMX), which would otherwise carry
    into the next test in that worker."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def sample_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The bundled sample's train, test and answer key, read once per session."""
    return (
        pd.read_csv(SAMPLE / "train.csv.gz"),
        pd.read_csv(SAMPLE / "test.csv.gz"),
        pd.read_csv(SAMPLE / "solution.csv"),
    )


def write_slice(folder: Path, frames, n_train: int, n_test: int) -> Path:
    """A data dir with the first rows of the bundled sample, in Kaggle's layout + answer key."""
    train, test, solution = frames
    folder.mkdir(parents=True, exist_ok=True)
    train.iloc[:n_train].to_csv(folder / "train.csv", index=False)
    test.iloc[:n_test].to_csv(folder / "test.csv", index=False)
    solution.iloc[:n_test].to_csv(folder / "solution.csv", index=False)
    ids = np.arange(1, n_test + 1)
    pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return folder


@pytest.fixture
def small_dir(tmp_path, sample_frames) -> Path:
    """200 training and 50 test rows: enough for validation tests, which never train."""
    return write_slice(tmp_path / "data", sample_frames, 200, 50)


class Runner:
    """Calls run.main() in-process with output folders inside a temporary directory."""

    def __init__(self, tmp_path: Path, capsys):
        self.runs = tmp_path / "runs"
        self.subs = tmp_path / "submissions"
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        argv = [*args, "--runs-dir", str(self.runs), "--submissions-dir", str(self.subs)]
        code = run.main(argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    def written(self) -> list[Path]:
        """Every file any run left behind."""
        return [p for d in (self.runs, self.subs) if d.exists() for p in d.rglob("*")]


@pytest.fixture
def runner(tmp_path, capsys) -> Runner:
    return Runner(tmp_path, capsys)


@pytest.fixture
def copy_sample(tmp_path) -> Path:
    """A writable copy of the whole bundled sample."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No Kaggle credentials anywhere the kaggle CLI looks (HOME a new, empty folder)."""
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR",
                "XDG_CONFIG_HOME"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def kaggle(tmp_path, monkeypatch, sample_frames):
    """The real kaggle CLI (requirements-kaggle.txt, which requirements-dev.txt installs)
    talking to a stand-in of Kaggle's API on the loopback (tests/kaggle_api.py), with a token
    the stand-in accepts and a home of its own; no waiting between polls. Returns the
    stand-in: its `mode` chooses Kaggle's answers, `calls` and `submissions` say what came."""
    from kaggle_api import TOKEN, KaggleStandIn

    if kaggle_cli.find_cli() is None:
        pytest.fail("the kaggle CLI is missing: pip install -r requirements-dev.txt installs it")
    data = write_slice(tmp_path / "kaggle-data", sample_frames, 400, 40)
    stand_in = KaggleStandIn(tmp_path / "kaggle-api", data)
    for name, value in stand_in.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the CLI makes its config folder there
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    monkeypatch.setattr(kaggle_cli, "POLL_S", 0.01)
    yield stand_in
    stand_in.close()
