"""The loop with Kaggle, against a stub `kaggle` that answers in the real CLI 2.2.5's formats
(tests/kaggle_stub.py): the public score back in the run, the table of all runs, Kaggle's
refusals as one line each, and a run inside a (faked) Kaggle notebook."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

import run
from conftest import NARROW, Runner, write_slice
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
    calls = (kaggle / "calls.log").read_text().splitlines()
    assert calls[0].startswith("competitions submit -c digit-recognizer -f ")
    assert calls[0].endswith("k.csv -m k: first try")
    assert calls[1:] == ["competitions submissions -c digit-recognizer --format json"] * 2


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
    os.environ["KAGGLE_STUB_SCORE"] = "0.98800"
    try:
        code, out, err = runner("--scores")
    finally:
        del os.environ["KAGGLE_STUB_SCORE"]
    assert code == 0, err
    assert "later: public score 0.98800" in out
    assert summary_of(runner, "later")["kaggle"]["public_score"] == 0.988
    code, out, err = runner("--scores")
    assert "no run" in out and "waits for a score" in out


@pytest.mark.parametrize(
    "mode, advice",
    [
        ("unjoined", "join the competition and accept its rules at"
                     " https://www.kaggle.com/competitions/digit-recognizer/rules"),
        ("limit", "the daily submission limit is reached; submit again tomorrow"),
        ("offline", "no network (Kaggle could not be reached); try again when online"),
    ],
)  # fmt: skip
def test_kaggle_refusals_are_one_line_and_keep_the_file(
    finished, kaggle, capsys, monkeypatch, mode, advice
):
    _, runner = finished
    runner.capsys = capsys
    monkeypatch.setenv("KAGGLE_STUB_MODE", mode)
    before = (runner.subs / "k.csv").read_bytes(), summary_of(runner)
    code, out, err = runner("--report", "k", "--submit", "--wait")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert advice in err and "k.csv is kept" in err
    assert (runner.subs / "k.csv").read_bytes() == before[0]
    assert summary_of(runner) == before[1]  # nothing recorded


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
