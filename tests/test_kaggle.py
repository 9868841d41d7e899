"""The loop with Kaggle, through the real kaggle CLI against a stand-in of Kaggle's API
(tests/kaggle_api.py): the file uploaded, the public score back in the run, the table of all
runs, Kaggle's refusals as one line each in its own words, and a run inside a (faked) Kaggle
notebook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

import run
from conftest import NARROW, Runner, write_slice
from kaggle_api import MODES, TOKEN
from src.config import ROOT

TINY = ["--folds", "2", "--epochs", "2", "--full-fits", "0", "--trials", "0", "--seed", "5",
        *NARROW]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sample_frames):
    """One finished tiny run, "k", to submit: (root, runner)."""
    root = tmp_path_factory.mktemp("kaggle")
    data = write_slice(root / "data", sample_frames, 600, 50)
    runner = Runner(root, capsys=None)
    runner.capsys = type("Quiet", (), {"readouterr": lambda self: ("", "")})()
    code, _, err = runner("--data-dir", str(data), *TINY, "--run-name", "k")
    assert code == 0, err
    return root, runner


def summary_of(runner, name="k") -> dict:
    return json.loads((runner.runs / name / "summary.json").read_text())


def test_submit_wait_records_the_public_score_in_the_run(finished, kaggle, capsys):
    _, runner = finished
    runner.capsys = capsys
    code, out, err = runner("--report", "k", "--submit", "--wait", "-m", "k: first try")
    assert code == 0, err
    entry = summary_of(runner)["kaggle"]
    assert entry["public_score"] == 0.991 and entry["status"] == "scored"
    assert (entry["file"], entry["message"], entry["ref"]) == ("k.csv", "k: first try", 50000001)
    oof = summary_of(runner)["oof_accuracy"]
    assert f"k: public score 0.99100  (out-of-fold {oof:.4f})" in out
    assert "public score <b>0.99100</b>" in (runner.runs / "k" / "report.html").read_text()
    calls = [c for c in kaggle.calls if c != "IntrospectToken"]
    assert calls == ["StartSubmissionUpload", "PUT upload", "CreateSubmission",
                     "GetSubmissionLimits", "ListSubmissions", "ListSubmissions"]  # fmt: skip
    sent = kaggle.submissions[0]
    assert sent["bytes"] == (runner.subs / "k.csv").read_bytes()  # the file, uploaded whole
    assert sent["description"] == "k: first try"


def test_scores_fetches_a_score_that_came_later(finished, kaggle, capsys, tmp_path):
    root, runner = finished
    runner.capsys = capsys
    shutil.copytree(runner.runs / "k", runner.runs / "later")
    shutil.copyfile(runner.subs / "k.csv", runner.subs / "later.csv")
    code, out, err = runner("--report", "later", "--submit")
    assert code == 0, err
    assert summary_of(runner, "later")["kaggle"]["public_score"] is None
    assert "`python run.py --scores` fetches them" in out
    code, out, err = runner("--scores")  # Kaggle is still scoring it
    assert code == 0, err
    assert "later: not scored yet (submitted)" in out
    kaggle.score = "0.98800"
    code, out, err = runner("--scores")
    assert code == 0, err
    assert "later: public score 0.98800" in out
    assert summary_of(runner, "later")["kaggle"]["public_score"] == 0.988
    code, out, err = runner("--scores")
    assert "no run" in out and "waits for a score" in out
    code, out, err = runner("--runs")
    assert code == 0 and re.search(r"^later .* 0\.98800 ", out, re.MULTILINE), out


@pytest.mark.parametrize(
    "mode, said",
    [
        ("rules", "Kaggle said: You must accept this competition's rules before you'll be able to"
                  " submit.; join the competition and accept its rules at"
                  " https://www.kaggle.com/competitions/digit-recognizer/rules"),
        ("limit", "Kaggle said: Your team has used its daily Submission allowance (5) today,"
                  " please try again tomorrow UTC (9.2 hours from now).; the daily submission"
                  " limit is reached; submit again tomorrow"),
        ("missing", "Kaggle said: Could not find competition - please verify that you entered"
                    " the correct competition ID and that the competition is still accepting"
                    " submissions. Error: 404 Client Error: Not Found for url:"),
        ("rate", "Kaggle said: 429 Client Error: Too Many Requests for url: http://localhost/"
                 "api/v1/competitions.CompetitionApiService/StartSubmissionUpload; wait a"
                 " little, then try again"),
        ("down", "Kaggle said: 503 Server Error: Service Unavailable for url:"),
        ("unauthorized", "Kaggle did not accept the credentials in KAGGLE_API_TOKEN"),
        ("wrong key", "Kaggle did not accept the credentials in KAGGLE_KEY"),  # an HTTP 401
        ("offline", "no network (Kaggle could not be reached); try again when online"),
    ],
)  # fmt: skip
def test_kaggle_refusals_are_one_line_in_its_words_and_keep_the_file(
    finished, kaggle, capsys, monkeypatch, mode, said
):
    _, runner = finished
    runner.capsys = capsys
    if mode == "wrong key":  # a username and key: the CLI sends them, Kaggle answers 401
        monkeypatch.delenv("KAGGLE_API_TOKEN")
        monkeypatch.setenv("KAGGLE_USERNAME", "someone")
        monkeypatch.setenv("KAGGLE_KEY", "not-a-key")
    if mode == "offline":
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    if mode in MODES:
        kaggle.mode = mode
    before = (runner.subs / "k.csv").read_bytes(), summary_of(runner)
    code, out, err = runner("--report", "k", "--submit", "--wait")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert said in err and "k.csv is kept" in err
    assert "<competition>" not in err  # the CLI's generic hint, replaced by the real address
    assert (runner.runs / "k" / "report.html").exists()
    assert (runner.subs / "k.csv").read_bytes() == before[0]
    assert summary_of(runner) == before[1]  # nothing recorded


def test_scores_refused_is_one_line_in_kaggles_words(finished, kaggle, capsys):
    _, runner = finished
    runner.capsys = capsys
    shutil.copytree(runner.runs / "k", runner.runs / "waiting")
    summary = summary_of(runner, "waiting")
    summary["kaggle"] = {"competition": "digit-recognizer", "message": "m", "file": "w.csv",
                         "ref": 1, "status": "submitted", "public_score": None}  # fmt: skip
    (runner.runs / "waiting" / "summary.json").write_text(json.dumps(summary))
    kaggle.mode = "down"
    try:
        code, out, err = runner("--scores")
    finally:
        shutil.rmtree(runner.runs / "waiting")  # the later tests list the runs
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert ("kaggle competitions submissions -c digit-recognizer: exit code 1: Kaggle said: 503"
            " Server Error: Service Unavailable") in err  # fmt: skip
    assert "a problem on Kaggle's side; try again later" in err


def test_runs_lists_every_run_best_first_with_the_plot(finished, kaggle, capsys):
    _, runner = finished
    runner.capsys = capsys
    for name, oof, public in (("best", 0.999, 0.995), ("worst", 0.01, None)):
        shutil.copytree(runner.runs / "k", runner.runs / name)
        summary = summary_of(runner, name)
        summary["oof_accuracy"] = oof
        summary["kaggle"] = {**summary.get("kaggle", summary_of(runner)["kaggle"]),
                             "public_score": public}  # fmt: skip
        (runner.runs / name / "summary.json").write_text(json.dumps(summary))
    (runner.runs / "broken").mkdir()
    (runner.runs / "broken" / "summary.json").write_text("{")
    (runner.runs / "half").mkdir()  # a run killed before its config was written
    (runner.runs / ".jax-cache").mkdir()  # compiled programs (Keras on JAX): not a run
    code, out, err = runner("--runs")
    assert code == 0, err
    lines = out.splitlines()
    names = [line.split()[0] for line in lines[1:] if line and not line.startswith("index:")]
    assert names[:2] == ["best", "k"] and names.index("worst") < names.index("broken")
    assert "broken (JSONDecodeError" in out and "half" in out and "unfinished" in out
    assert ".jax-cache" not in out
    assert " 0.99500 " in lines[1] + " " and "yes" in lines[1]
    page = (runner.runs / "index.html").read_text()
    assert '<a href="best/report.html">best</a>' in page
    assert "index_oof_vs_public.png" in page  # two runs with both numbers: the plot
    assert (runner.runs / "index_oof_vs_public.png").read_bytes()[:4] == b"\x89PNG"


def test_a_kaggle_notebook_runs_with_no_flags(tmp_path, sample_frames, monkeypatch, capsys):
    root = tmp_path / "kaggle"
    write_slice(root / "input" / "digit-recognizer", sample_frames, 300, 40)
    (root / "working").mkdir()
    monkeypatch.setenv("DIGITS_KAGGLE_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    code = run.main(["--folds", "0", "--full-fits", "1", "--epochs", "1", "--trials", "0",
                     "--run-name", "nb"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"kaggle notebook ({root}): data from")
    sub = pd.read_csv(root / "working" / "submission.csv")  # what the Submit button sends
    assert list(sub.columns) == ["ImageId", "Label"] and len(sub) == 40
    assert (root / "working" / "runs" / "nb" / "summary.json").exists()
    assert not (ROOT / "runs" / "nb").exists()


LEGACY = '{"username": "someone", "key": "k"}'


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {".config/kaggle/kaggle.json": LEGACY},  # no ~/.kaggle: the XDG folder is read
        {".config/kaggle/kaggle.json": LEGACY, ".kaggle/": ""},  # ~/.kaggle exists: it is not
        {".config/kaggle/access_token": TOKEN, ".kaggle/": ""},
        {".kaggle/access_token": TOKEN},
        {".kaggle/access_token": ""},
        {".kaggle/access_token.txt": TOKEN},
        {"conf/kaggle.json": LEGACY, "env:KAGGLE_CONFIG_DIR": "~/conf"},
        {".kaggle/kaggle.json": LEGACY, "env:KAGGLE_CONFIG_DIR": "~/conf"},  # not the one read
        {"token-file": TOKEN, "env:KAGGLE_API_TOKEN": "~/token-file"},
        {"env:KAGGLE_USERNAME": "someone", "env:KAGGLE_KEY": "k"},
        {".kaggle/kaggle.json": '{"username": "someone"}', "env:KAGGLE_KEY": "k"},
    ],
    ids=lambda layout: ",".join(layout) or "nothing",
)
def test_credentials_are_found_exactly_where_the_real_cli_finds_them(
    kaggle, tmp_path, monkeypatch, layout
):
    """The pinned CLI itself, asked (`kaggle config view`), against the stand-in that knows the
    token: it authenticates exactly where credential_source says credentials are."""
    from src.review.kaggle_cli import credential_source, find_cli

    home = tmp_path / "home-of-" / "user"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    for name, text in layout.items():
        if name.startswith("env:"):  # a variable; "~/x": a path in the home
            value = str(home / text[2:]) if text.startswith("~/") else text
            monkeypatch.setenv(name[4:], value)
        elif name.endswith("/"):
            (home / name).mkdir(parents=True, exist_ok=True)
        else:
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            (home / name).write_text(text)
    asked = subprocess.run([find_cli(), "config", "view"], capture_output=True, text=True)
    user = re.search(r"^- username: (\S+)", asked.stdout, re.MULTILINE)
    cli_finds = asked.returncode == 0 and user is not None and user.group(1) != "None"
    assert (credential_source() is not None) == cli_finds, asked.stdout + asked.stderr


def test_a_missing_or_older_cli_is_one_line_before_anything(finished, kaggle, capsys,
                                                             monkeypatch, tmp_path):  # fmt: skip
    _, runner = finished
    runner.capsys = capsys
    bin_dir = tmp_path / "old-bin"
    bin_dir.mkdir()
    old = bin_dir / "kaggle"  # an older CLI's answer to --version, nothing else asked of it
    old.write_text("#!/bin/sh\necho 'Kaggle CLI 1.7.4.5'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code, _, err = runner("--report", "k", "--submit")
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert f"the kaggle CLI at {old} is 1.7.4, older than 2.2.5" in err
    assert "pip install -r requirements-kaggle.txt" in err and kaggle.calls == []
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # and none beside this Python
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nothing" / "python"))
    code, _, err = runner("--report", "k", "--submit")
    assert code == 2 and "--submit: the kaggle CLI is not installed" in err
