"""`--on-kaggle` through the real kaggle CLI, against a stand-in of Kaggle's API that runs the
pushed script as a notebook would, outside this repository (tests/kaggle_api.py): the push
carries everything the run needs, the run folder comes home as a local run leaves it, and
every refusal is one line, in Kaggle's own words, with nothing left behind."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

import numpy as np
import pandas as pd
import pytest

from conftest import NARROW
from src import remote
from src.cli import parse_args
from src.config import ROOT
from src.data.load import Layout
from src.outputs.submission import check_submission

TINY = ["--folds", "2", "--epochs", "1", "--full-fits", "1", "--trials", "0", *NARROW]


def remote_metadata(runner, *flags: str) -> str:
    """The kernel-metadata.json that `--on-kaggle` with `flags` would push."""
    import tempfile
    from pathlib import Path

    cfg = parse_args(["--on-kaggle", *flags, "--run-name", "m", "--runs-dir", str(runner.runs)])
    with tempfile.TemporaryDirectory() as tmp:
        remote.write_kernel(cfg, "someone", Path(tmp))
        return (Path(tmp) / "kernel-metadata.json").read_text()


def calls(kaggle) -> list[str]:
    """The API calls the CLI made, the token's checks and the file downloads left out."""
    return [c for c in kaggle.calls if c not in ("IntrospectToken", "GET file")]


def test_a_run_on_kaggle_comes_home_as_a_local_run(kaggle, runner):
    """Pushed with the GPU and the competition attached; a wait that runs out leaves the notebook
    going and the next call attaches to it (no second push); the fetched run folder is listed,
    rebuilt and submitted as a local one."""
    flags = ["--on-kaggle", *TINY, "--run-name", "r", "--kaggle-poll", "0.01"]
    code, out, err = runner(*flags, "--kaggle-timeout", "0.001")
    assert code == 2
    assert "stand-in-user/digit-recogniser-r is still QUEUED" in err and "come back to it" in err
    home = runner.runs / ".kaggle" / "r"
    meta = json.loads((home / "push" / "kernel-metadata.json").read_text())
    assert meta["id"] == "stand-in-user/digit-recogniser-r" and meta["kernel_type"] == "script"
    assert (meta["enable_gpu"], meta["is_private"], meta["enable_internet"]) == (True, True, False)
    sent = kaggle.kernels["digit-recogniser-r"]["versions"][0]  # what Kaggle received
    assert sent["competitionDataSources"] == ["digit-recognizer"]
    assert (sent["machineShape"], sent["enableGpu"], sent["isPrivate"]) == (
        "NvidiaTeslaT4",
        True,
        True,
    )
    assert not (runner.runs / "r").exists()

    code, out, err = runner("--on-kaggle", "--report", "r", "--kaggle-poll", "0.01")
    assert code == 0, err
    assert "attaching to stand-in-user/digit-recogniser-r (version 1" in out
    assert "is RUNNING" in out
    assert calls(kaggle)[:4] == ["SaveKernel", *["GetKernelSessionStatus"] * 3]
    assert set(calls(kaggle)[4:]) == {"ListKernelSessionOutput"}  # its pages
    summary = json.loads((runner.runs / "r" / "summary.json").read_text())
    assert summary["trained_on"]["kaggle_kernel"] == "stand-in-user/digit-recogniser-r"
    assert summary["trained_on"]["device"].startswith("CPU")  # the stand-in's "notebook"
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
    assert calls(kaggle).count("SaveKernel") == 1
    code, out, err = runner("--on-kaggle", "--report", "r", "--submit")  # sent as a local run
    assert code == 0, err
    assert calls(kaggle)[-1] == "GetSubmissionLimits" and "Submission ref: " in out
    assert kaggle.submissions[0]["bytes"] == (runner.subs / "r.csv").read_bytes()
    assert (
        json.loads((runner.runs / "r" / "summary.json").read_text())["kaggle"]["file"] == "r.csv"
    )


def test_a_failed_notebook_shows_its_log_and_keeps_it(kaggle, runner):
    """The notebook's own run fails (its data is missing): the log's last lines, one error line
    with Kaggle's failure message, the log kept, and the next call would push again."""
    kaggle.mode = "nodata"
    code, out, err = runner("--on-kaggle", *TINY, "--run-name", "f", "--kaggle-poll", "0.01")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --on-kaggle: the Kaggle run stand-in-user/digit-recogniser-f"
                           " ended ERROR (Your notebook hit an error: exit code 2)")  # fmt: skip
    assert "| error: in a Kaggle notebook: no folder with a train.csv" in err
    home = runner.runs / ".kaggle" / "f"
    assert (home / "output" / "digit-recogniser-f.log").exists()
    assert not (home / "kernel.json").exists() and (home / "kernel-error-v1.json").exists()
    assert not (runner.runs / "f").exists() and list(runner.subs.iterdir()) == []  # checked, empty


@pytest.mark.parametrize(
    "mode, fragment",
    [
        ("quota", "Kaggle refused the push: Maximum weekly GPU quota of 30.00 hours reached.;"
                  " `kaggle quota` shows what is left"),
        ("shape", "Kaggle refused the push: Accelerator NvidiaTeslaT4 is not available for this"
                  " kernel.; pick another --kaggle-accelerator"),
        ("missing", "kaggle kernels push failed: Kaggle said: 404 Client Error: Not Found for url:"
                    " http://localhost/api/v1/kernels.KernelsApiService/SaveKernel; check the"
                    " name"),
        ("rate", "Kaggle said: 429 Client Error: Too Many Requests for url: http://localhost/api/"
                 "v1/kernels.KernelsApiService/SaveKernel; wait a little, then try again"),
        ("down", "Kaggle said: 503 Server Error: Service Unavailable for url: http://localhost/"
                 "api/v1/kernels.KernelsApiService/SaveKernel; a problem on Kaggle's side"),
        ("unauthorized", "Kaggle did not accept the credentials in KAGGLE_API_TOKEN; renew the"
                         " token"),
        ("offline", "no network (Kaggle could not be reached); try again when online"),
        ("no credentials", "no Kaggle credentials found"),
    ],
)  # fmt: skip
def test_a_refused_push_is_one_line_in_kaggles_words_and_leaves_nothing(
    kaggle, runner, monkeypatch, tmp_path, mode, fragment
):
    if mode == "no credentials":
        monkeypatch.delenv("KAGGLE_API_TOKEN")
    elif mode == "offline":
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    else:
        kaggle.mode = mode
    code, out, err = runner("--on-kaggle", *TINY, "--run-name", "x")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert "<competition>" not in err and "kaggle search <query>" not in err  # the CLI's hints
    assert runner.written() == []


def test_a_push_kaggle_answers_without_a_version_is_kept_and_not_pushed_again(kaggle, runner):
    kaggle.mode = "noversion"
    flags = ["--on-kaggle", *TINY, "--run-name", "v", "--kaggle-poll", "0.01"]
    code, out, err = runner(*flags, "--kaggle-timeout", "0.001")
    assert code == 2 and "is still QUEUED" in err
    assert "pushed stand-in-user/digit-recogniser-v its latest version" in out
    kernel = json.loads((runner.runs / ".kaggle" / "v" / "kernel.json").read_text())
    assert kernel["version"] is None and kernel["url"].endswith("/digit-recogniser-v")
    kaggle.mode = "ok"
    code, out, err = runner(*flags)
    assert code == 0, err
    assert "attaching to stand-in-user/digit-recogniser-v (its latest version" in out
    assert calls(kaggle).count("SaveKernel") == 1 and (runner.runs / "v" / "summary.json").exists()


def test_a_push_without_the_competitions_files_says_so_and_the_next_pushes(kaggle, runner):
    """Kaggle takes the push but not the competition as a source (its rules not accepted):
    the version is recorded as such, one line says why and what to do; once joined, the same
    command pushes a version that has the data (a reason to push again), and it comes home."""
    kaggle.mode = "unjoined"
    flags = ["--on-kaggle", *TINY, "--run-name", "u", "--kaggle-poll", "0.01"]
    code, out, err = runner(*flags)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Kaggle took stand-in-user/digit-recogniser-u (version 1, http://localhost/" in err
    assert "but not digit-recognizer's files" in err
    assert "accept its rules at https://www.kaggle.com/competitions/digit-recognizer/rules" in err
    assert (runner.runs / ".kaggle" / "u" / "kernel-unjoined-v1.json").exists()
    kaggle.mode = "ok"
    code, out, err = runner(*flags)
    assert code == 0, err
    assert "pushed stand-in-user/digit-recogniser-u version 2" in out
    assert (runner.runs / "u" / "summary.json").exists()


def test_a_new_script_is_waited_for_like_a_queued_one(kaggle, runner):
    kaggle.mode = "new_script"
    code, out, err = runner("--on-kaggle", *TINY, "--run-name", "n", "--kaggle-poll", "0.01")
    assert code == 0, err
    assert "stand-in-user/digit-recogniser-n is NEW_SCRIPT" in out and "is RUNNING" in out


def test_a_status_kaggle_cannot_find_is_one_line_in_its_words(kaggle, runner):
    code, _, err = runner("--on-kaggle", *TINY, "--run-name", "g", "--kaggle-timeout", "0.001")
    assert code == 2 and "is still QUEUED" in err
    kaggle.mode = "missing"
    code, _, err = runner("--on-kaggle", "--report", "g")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert ("kaggle kernels status stand-in-user/digit-recogniser-g failed: Kaggle said: 404"
            " Client Error: Not Found for url") in err  # fmt: skip


def test_ctrl_c_while_waiting_leaves_the_notebook_running(kaggle, runner, monkeypatch):
    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(remote.time, "sleep", interrupt)
    code, _, err = runner("--on-kaggle", *TINY, "--run-name", "c")
    assert code == 2
    assert "interrupted: stand-in-user/digit-recogniser-c keeps running on Kaggle" in err
    assert "python run.py --on-kaggle --report c" in err
    assert (runner.runs / ".kaggle" / "c" / "kernel.json").exists()  # what attaching reads


def test_attaching_needs_a_pushed_run(kaggle, runner):
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
def test_what_the_notebook_cannot_honour_is_refused_before_the_push(kaggle, runner, flags,
                                                                    fragment):  # fmt: skip
    code, _, err = runner("--on-kaggle", *TINY, "--run-name", "n", *flags)
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert kaggle.calls == []  # the CLI was never called
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
