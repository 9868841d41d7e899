"""`--on-kaggle` against the stub `kaggle` (tests/kaggle_stub.py), which answers as the CLI
2.2.5 does and runs the pushed script as a notebook would, outside this repository: the push
carries everything the run needs, the run folder comes home as a local run leaves it, and
every refusal is one line with nothing left behind."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

import numpy as np
import pandas as pd
import pytest

from conftest import NARROW, write_slice
from src import remote
from src.cli import parse_args
from src.config import ROOT
from src.data.load import Layout
from src.outputs.submission import check_submission

TINY = ["--folds", "2", "--epochs", "1", "--full-fits", "1", "--trials", "0", *NARROW]


@pytest.fixture
def stub(kaggle, tmp_path, monkeypatch, sample_frames):
    """The stub CLI (conftest's `kaggle`) and the competition's files it mounts; its state."""
    monkeypatch.setenv("KAGGLE_STUB_DATA", str(write_slice(tmp_path / "kaggle-data",
                                                           sample_frames, 400, 40)))  # fmt: skip
    return kaggle


def remote_metadata(runner, *flags: str) -> str:
    """The kernel-metadata.json that `--on-kaggle` with `flags` would push."""
    import tempfile
    from pathlib import Path

    cfg = parse_args(["--on-kaggle", *flags, "--run-name", "m", "--runs-dir", str(runner.runs)])
    with tempfile.TemporaryDirectory() as tmp:
        remote.write_kernel(cfg, "someone", Path(tmp))
        return (Path(tmp) / "kernel-metadata.json").read_text()


def calls(state) -> list[str]:
    return [" ".join(c.split()[:2]) for c in (state / "calls.log").read_text().splitlines()]


def test_a_run_on_kaggle_comes_home_as_a_local_run(stub, runner):
    """Pushed with the GPU and the competition attached; a wait that runs out leaves the notebook
    going and the next call attaches to it (no second push); the fetched run folder is listed,
    rebuilt and submitted as a local one."""
    flags = ["--on-kaggle", *TINY, "--run-name", "r", "--kaggle-poll", "0.01"]
    code, out, err = runner(*flags, "--kaggle-timeout", "0.001")
    assert code == 2
    assert "stub-user/digit-recogniser-r is still QUEUED" in err and "come back to it" in err
    home = runner.runs / ".kaggle" / "r"
    meta = json.loads((home / "push" / "kernel-metadata.json").read_text())
    assert meta["id"] == "stub-user/digit-recogniser-r" and meta["kernel_type"] == "script"
    assert (meta["enable_gpu"], meta["is_private"], meta["enable_internet"]) == (True, True, False)
    assert meta["competition_sources"] == ["digit-recognizer"]
    assert "--accelerator NvidiaTeslaT4" in (stub / "calls.log").read_text()
    assert not (runner.runs / "r").exists()

    code, out, err = runner("--on-kaggle", "--report", "r", "--kaggle-poll", "0.01")
    assert code == 0, err
    assert "attaching to stub-user/digit-recogniser-r (version 1" in out
    assert "is RUNNING" in out
    assert calls(stub) == ["config view", "kernels push", "kernels status", "kernels status",
                           "kernels status", "kernels output"]  # fmt: skip
    summary = json.loads((runner.runs / "r" / "summary.json").read_text())
    assert summary["trained_on"]["kaggle_kernel"] == "stub-user/digit-recogniser-r"
    assert summary["trained_on"]["device"].startswith("CPU")  # the stub's "notebook" has no GPU
    assert len(summary["folds"]) == 2 and summary["oof_accuracy"] is not None
    sub = pd.read_csv(runner.subs / "submission.csv")
    assert sub.equals(pd.read_csv(runner.subs / "r.csv")) and len(sub) == 40
    with np.load(runner.runs / "r" / "ensemble.npz") as z:
        check_submission(sub, Layout.from_arrays(z))
    assert "Trained as the Kaggle notebook" in (runner.runs / "r" / "report.html").read_text()

    code, out, _ = runner("--runs")
    assert code == 0 and "\nr " in out
    code, _, err = runner("--report", "r")
    assert code == 0, err
    code, out, _ = runner(*flags)  # the same command again: nothing is pushed or trained
    assert code == 0 and "already home from Kaggle" in out
    assert calls(stub).count("kernels push") == 1
    code, out, err = runner("--on-kaggle", "--report", "r", "--submit")  # sent as a local run
    assert code == 0, err
    assert calls(stub)[-1] == "competitions submit" and "Submission ref: " in out
    assert (
        json.loads((runner.runs / "r" / "summary.json").read_text())["kaggle"]["file"] == "r.csv"
    )


def test_a_failed_notebook_shows_its_log_and_keeps_it(stub, runner, monkeypatch):
    """The notebook's own run fails (its data is missing): the log's last lines, one error line,
    the log kept, and the next call would push again."""
    monkeypatch.setenv("KAGGLE_STUB_MODE", "nodata")
    code, out, err = runner("--on-kaggle", *TINY, "--run-name", "f", "--kaggle-poll", "0.01")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --on-kaggle: the Kaggle run stub-user/digit-recogniser-f"
                           " ended ERROR (Your notebook hit an error: exit code 2)")  # fmt: skip
    assert "| error: in a Kaggle notebook: no folder with a train.csv" in err
    home = runner.runs / ".kaggle" / "f"
    assert (home / "output" / "digit-recogniser-f.log").exists()
    assert not (home / "kernel.json").exists() and (home / "kernel-error-v1.json").exists()
    assert not (runner.runs / "f").exists() and list(runner.subs.iterdir()) == []  # checked, empty


@pytest.mark.parametrize(
    "mode, fragment",
    [
        ("unjoined", "join the competition and accept its rules at https://www.kaggle.com/"
                     "competitions/digit-recognizer/rules"),
        ("quota", "Kaggle refused the push: Maximum weekly GPU quota of 30.00 hours reached.;"
                  " `kaggle quota` shows what is left"),
        ("shape", "Kaggle refused the push: Accelerator NvidiaTeslaT4 is not available for this"
                  " kernel.; pick another --kaggle-accelerator"),
        ("rejected", "kaggle kernels push failed: the kaggle CLI said: 400 Client Error: Bad"
                     " Request for url"),
        ("offline", "no network (Kaggle could not be reached)"),
        ("no credentials", "no Kaggle credentials found"),
    ],
)  # fmt: skip
def test_a_refused_push_is_one_line_and_leaves_nothing(stub, runner, monkeypatch, tmp_path,
                                                       mode, fragment):  # fmt: skip
    if mode == "no credentials":
        monkeypatch.delenv("KAGGLE_API_TOKEN")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv("KAGGLE_STUB_MODE", mode)
    code, out, err = runner("--on-kaggle", *TINY, "--run-name", "x")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert runner.written() == []


def test_ctrl_c_while_waiting_leaves_the_notebook_running(stub, runner, monkeypatch):
    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(remote.time, "sleep", interrupt)
    code, _, err = runner("--on-kaggle", *TINY, "--run-name", "c")
    assert code == 2
    assert "interrupted: stub-user/digit-recogniser-c keeps running on Kaggle" in err
    assert "python run.py --on-kaggle --report c" in err
    assert (runner.runs / ".kaggle" / "c" / "kernel.json").exists()  # what attaching reads


def test_attaching_needs_a_pushed_run(stub, runner):
    code, _, err = runner("--on-kaggle", "--report", "never")
    assert code == 2 and "no Kaggle run of that name was pushed from here" in err
    assert runner.written() == []


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--storage", "sqlite:////tmp/x.db"], "the notebook runs offline and cannot reach"),
        (["--data-dir", "input/sample"], "reads digit-recognizer's own files, not --data-dir"),
        (["--deterministic"], "--deterministic is TensorFlow's and the notebook trains on JAX"),
        (["--augment", "idg"], "--augment idg needs TensorFlow"),
        (["--precision", "mixed_float16"], "mixed_float16 needs loss scaling"),
        (["--set", "ema_momentum=0.99"], "--set ema_momentum is model.fit's only"),
        (["--kaggle-accelerator", "NvidiaTeslaP100"], "NvidiaTeslaP100 is retired"),
    ],
)  # fmt: skip
def test_what_the_notebook_cannot_honour_is_refused_before_the_push(stub, runner, flags,
                                                                    fragment):  # fmt: skip
    code, _, err = runner("--on-kaggle", *TINY, "--run-name", "n", *flags)
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert not (stub / "calls.log").exists()  # the CLI was never called
    assert runner.written() == []


def test_every_training_setting_reaches_the_notebooks_command():
    """Each setting declared `remote` (src/config.py), at a value other than its default, comes
    back from the notebook's command as given: a new setting cannot be forgotten there."""
    from dataclasses import replace

    from src.cli import remote_settings
    from src.config import SETTINGS

    others = {"folds": 4, "full_fits": 2, "epochs": 7, "patience": 3, "pseudo_labels": 0.99,
              "model": "seed", "augment": "none", "engine": "sequential", "precision": "float32",
              "seed": 3, "deterministic": True, "trials": 2, "search_epochs": 4,
              "search_folds": 2, "timeout": 60.0, "study_name": "wide", "n_jobs": 2,
              "competition": "kannada-mnist", "run_name": "z",
              "overrides": (("dropout", 0.3), ("optimizer", "sgd"))}  # fmt: skip
    names = remote_settings()
    assert sorted(names) == sorted(others)  # a new remote setting: give it a value here
    assert all(others[name] != SETTINGS[name].default for name in names)
    cfg = replace(parse_args(["--run-name", "z"]), **others)
    again = parse_args([*remote.remote_args(cfg), "--trials", "0"])  # (the seed model: no search)
    assert {n: getattr(again, n) for n in names} == {**others, "trials": 0}
    assert remote.remote_args(cfg).count("--trials") == 1


def test_the_notebooks_internet_is_off_unless_asked(runner):
    assert json.loads(remote_metadata(runner))["enable_internet"] is False
    assert json.loads(remote_metadata(runner, "--kaggle-internet"))["enable_internet"] is True


def test_the_package_holds_run_py_and_every_module():
    names = set(zipfile.ZipFile(BytesIO(remote.package())).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")}
    assert names == {"run.py", *modules}


def test_the_package_is_the_same_bytes_whenever_it_is_built():
    """The notebook's script changes only when the code does, not with the files' times."""
    import os

    first = remote.package()
    run_py = ROOT / "run.py"
    times = run_py.stat()
    try:
        os.utime(run_py, (times.st_atime, times.st_mtime - 86_400 * 400))  # a year earlier
        assert remote.package() == first
    finally:
        os.utime(run_py, (times.st_atime, times.st_mtime))
