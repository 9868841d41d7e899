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


def test_a_run_on_kaggle_comes_home_as_a_local_run(stub, runner, small_dir):
    """Pushed with the GPU and the competition attached; a wait that runs out leaves the notebook
    going and the next call attaches to it (no second push); the fetched run folder is listed,
    rebuilt and submitted as a local one."""
    flags = ["--on-kaggle", "--data-dir", str(small_dir), *TINY, "--run-name", "r",
             "--kaggle-poll", "0.01"]  # fmt: skip
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
    assert "| run.py: error: in a Kaggle notebook: no folder with a train.csv" in err
    home = runner.runs / ".kaggle" / "f"
    assert (home / "output" / "digit-recogniser-f.log").exists()
    assert not (home / "kernel.json").exists() and (home / "kernel-error-v1.json").exists()
    assert not (runner.runs / "f").exists() and not runner.subs.exists()


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


def test_attaching_needs_a_pushed_run_and_flags_that_travel(stub, runner):
    code, _, err = runner("--on-kaggle", "--report", "never")
    assert code == 2 and "no Kaggle run of that name was pushed from here" in err
    with pytest.raises(SystemExit) as exit_:  # argparse's own error line
        runner("--on-kaggle", "--storage", "sqlite:////tmp/x.db")
    assert exit_.value.code == 2
    assert "the notebook cannot reach --storage" in runner.capsys.readouterr().err
    assert runner.written() == []


def test_the_pushed_flags_are_the_runs_training_settings():
    cfg = parse_args(["--folds", "4", "--epochs", "7", "--set", "dropout=0.3", "--set",
                      "optimizer=sgd", "--seed", "3", "--deterministic", "--run-name", "z",
                      "--trials", "2", "--timeout", "60", "--model", "cnn",
                      "--pseudo-labels", "0.99"])  # fmt: skip
    again = parse_args(remote.remote_args(cfg))
    assert again.training_settings() == cfg.training_settings()
    same = ("overrides", "trials", "timeout", "full_fits", "run_name", "search_epochs")
    assert {k: getattr(again, k) for k in same} == {k: getattr(cfg, k) for k in same}


def test_the_notebooks_internet_is_off_unless_asked(runner):
    assert json.loads(remote_metadata(runner))["enable_internet"] is False
    assert json.loads(remote_metadata(runner, "--kaggle-internet"))["enable_internet"] is True


def test_the_package_holds_run_py_and_every_module():
    names = set(zipfile.ZipFile(BytesIO(remote.package())).namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")}
    assert names == {"run.py", *modules}
    assert remote.package() == remote.package()  # the same code, the same bytes
