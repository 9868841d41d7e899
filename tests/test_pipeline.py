"""The real pipeline end to end on a slice of the bundled sample, with tiny budgets:
files and formats, accuracy above chance, resume, and byte-identical deterministic reruns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import Runner, write_slice

FLAGS = ["--folds", "2", "--epochs", "5", "--trials", "0", "--seed", "7", "--deterministic"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sample_frames):
    """One finished run, shared by the tests below: (runner, data dir, stdout)."""
    root = tmp_path_factory.mktemp("pipeline")
    data = write_slice(root / "data", sample_frames, 1200, 300)
    runner = Runner(root, capsys=None)
    return runner, data


def call(runner: Runner, capsys, *args):
    runner.capsys = capsys
    return runner(*args)


def test_run_writes_a_valid_submission_that_beats_chance(tiny, capsys):
    runner, data = tiny
    code, out, err = call(runner, capsys, "--data-dir", str(data), *FLAGS, "--run-name", "a")
    assert code == 0, err
    sub = pd.read_csv(runner.subs / "submission.csv")
    assert list(sub.columns) == ["ImageId", "Label"]
    assert sub["ImageId"].tolist() == list(range(1, 301))
    assert sub["Label"].between(0, 9).all()
    assert (runner.subs / "a.csv").read_bytes() == (runner.subs / "submission.csv").read_bytes()
    truth = pd.read_csv(data / "solution.csv")["Label"]
    assert (sub["Label"] == truth).mean() > 0.5  # chance is 0.1

    run = runner.runs / "a"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx((sub["Label"] == truth).mean())
    assert [f["fold"] for f in summary["folds"]] == [1, 2]
    for fold in (1, 2):
        assert (run / f"fold_{fold}" / "model.keras").stat().st_size > 10_000
        history = json.loads((run / f"fold_{fold}" / "history.json").read_text())
        assert len(history["val_loss"]) == 5
    ensemble = np.load(run / "ensemble.npz")
    assert ensemble["oof_proba"].shape == (1200, 10)
    assert (ensemble["test_proba"].argmax(1) == sub["Label"]).all()
    # the summary a person reads: fold scores, OOF, answer-key accuracy, how to submit
    assert "fold 2/2" in out and "Epoch 5/5" in out
    assert f"out-of-fold accuracy: {summary['oof_accuracy']:.4f}" in out
    assert f"test accuracy on solution.csv: {summary['test_accuracy']:.4f}" in out
    assert "kaggle competitions submit -c digit-recognizer -f" in out
    assert not list(runner.runs.rglob(".*tmp*")), "temporary files left behind"


def test_deterministic_rerun_is_byte_identical(tiny, capsys):
    runner, data = tiny
    code, _, err = call(runner, capsys, "--data-dir", str(data), *FLAGS, "--run-name", "b")
    assert code == 0, err
    assert (runner.subs / "b.csv").read_bytes() == (runner.subs / "a.csv").read_bytes()
    a = np.load(runner.runs / "a" / "ensemble.npz")["test_proba"]
    b = np.load(runner.runs / "b" / "ensemble.npz")["test_proba"]
    np.testing.assert_array_equal(a, b)


def test_resume_skips_finished_folds_and_retrains_the_rest(tiny, capsys):
    runner, data = tiny
    run = runner.runs / "a"
    # A run killed during fold 2: its completion marker was never written.
    (run / "fold_2" / "predictions.npz").unlink()
    model_1 = (run / "fold_1" / "model.keras").stat().st_mtime_ns
    model_2 = (run / "fold_2" / "model.keras").stat().st_mtime_ns
    code, out, err = call(runner, capsys, "--data-dir", str(data), *FLAGS, "--run-name", "a")
    assert code == 0, err
    assert "fold 1/2: finished in an earlier run, skipped" in out
    assert "fold 2/2: train on 600" in out
    assert out.count("Epoch 1/5") == 1  # only fold 2 trained
    assert (run / "fold_1" / "model.keras").stat().st_mtime_ns == model_1
    assert (run / "fold_2" / "model.keras").stat().st_mtime_ns != model_2
    # per-fold seeding: the resumed run reproduces the uninterrupted one exactly
    assert (runner.subs / "a.csv").read_bytes() == (runner.subs / "b.csv").read_bytes()


def test_resume_with_other_settings_is_refused(tiny, capsys):
    runner, data = tiny
    before = sorted(p.stat().st_mtime_ns for p in runner.written())
    flags = [f if f != "5" else "6" for f in FLAGS]  # --epochs 6
    code, _, err = call(runner, capsys, "--data-dir", str(data), *flags, "--run-name", "a")
    assert code == 2
    assert "epochs 5 -> 6" in err and "--run-name" in err
    assert sorted(p.stat().st_mtime_ns for p in runner.written()) == before
