"""The real pipeline end to end on a slice of the bundled sample, with tiny budgets:
files and formats, accuracy above chance, resume, and byte-identical deterministic reruns."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from conftest import NARROW, Runner, write_slice
from src.config import ROOT

FLAGS = ["--folds", "2", "--epochs", "5", "--full-fits", "1", "--trials", "0", "--seed", "7",
         "--deterministic", *NARROW]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sample_frames):
    """(runner, data dir) for the tests below. The first trains run `a` and those after it
    resume it, so they rely on this file's order (pytest keeps it: one process per file)."""
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
    # after each model's first epoch, the time the run has left (2 folds, 1 full fit)
    assert len(re.findall(r"── time left: at most (\d+ min )?\d+ s \(", out)) == 3
    assert "full fit 1/1: train on all 1200 rows, 5 epochs" in out
    assert "ensemble: the average of 1 full-data model (trained on every training row)" in out
    assert f"out-of-fold accuracy: {summary['oof_accuracy']:.4f}" in out
    assert f"test accuracy on solution.csv: {summary['test_accuracy']:.4f}" in out
    assert "kaggle competitions submit -c digit-recognizer -f" in out
    assert not list(runner.runs.rglob(".*tmp*")), "temporary files left behind"


def test_deterministic_rerun_is_byte_identical(tiny):
    """A second process with the same flags writes the same bytes (a control with another seed,
    below, shows the comparison can tell runs apart)."""
    runner, data = tiny
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), *FLAGS, "--run-name", "b",
         "--runs-dir", str(runner.runs), "--submissions-dir", str(runner.subs)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
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


def resume_refused(tiny, capsys, flags: list[str], run: str = "a") -> str:
    """Resume `run` with `flags`: exit 2, nothing written or touched; returns stderr."""
    runner, data = tiny
    before = sorted(p.stat().st_mtime_ns for p in runner.written())
    code, _, err = call(runner, capsys, "--data-dir", str(data), *flags, "--run-name", run)
    assert code == 2, err
    assert sorted(p.stat().st_mtime_ns for p in runner.written()) == before
    return err


def test_resume_with_other_settings_is_refused(tiny, capsys):
    err = resume_refused(tiny, capsys, [f if f != "5" else "6" for f in FLAGS])  # --epochs 6
    assert "epochs 5 -> 6" in err and "--run-name" in err


def test_resume_with_other_settings_is_refused_before_a_search(tiny, capsys):
    """With --trials, the resume is compared with its record before any trial: no search ran,
    no study was made (resume_refused: nothing written)."""
    runner, data = tiny
    before = sorted(p.stat().st_mtime_ns for p in runner.written())
    epochs_6 = [f if f != "5" else "6" for f in FLAGS]
    code, out, err = call(runner, capsys, "--data-dir", str(data), *epochs_6, "--trials", "2",
                          "--run-name", "a")  # fmt: skip
    assert code == 2 and "epochs 5 -> 6" in err
    assert "data:" in out and "search:" not in out  # checked after the data, before a trial
    assert sorted(p.stat().st_mtime_ns for p in runner.written()) == before


def test_set_overrides_reach_the_trained_params(tiny, capsys):
    """--set changes the params a run trains with: resuming run a with one is refused by name."""
    flags = [*FLAGS, "--set", "dropout=0.3", "--set", "elastic_alpha=20"]
    err = resume_refused(tiny, capsys, flags)
    assert "dropout 0.25 -> 0.3" in err and "elastic_alpha 0.0 -> 20.0" in err


def test_full_fits_train_on_every_row_and_make_the_submission(tiny, capsys):
    """Run a's full fit is its submission; without full fits the folds' average is, and the
    folds are the same either way (the full fit is extra, it does not change them)."""
    runner, data = tiny
    run = runner.runs / "a"
    full = np.load(run / "full_1" / "predictions.npz")["test_proba"]
    folds = [np.load(run / f"fold_{k}" / "predictions.npz")["test_proba"] for k in (1, 2)]
    np.testing.assert_array_equal(np.load(run / "ensemble.npz")["test_proba"], full)
    assert not np.allclose(full, np.mean(folds, axis=0))
    sub = pd.read_csv(runner.subs / "a.csv")
    assert (sub["Label"].to_numpy() == full.argmax(1)).all()
    history = json.loads((run / "full_1" / "history.json").read_text())
    assert len(history["loss"]) == 5 and "val_loss" not in history  # no rows held out
    summary = json.loads((run / "summary.json").read_text())
    assert [f["epochs"] for f in summary["full_fits"]] == [5]

    flags = ["--data-dir", str(data), *FLAGS, "--full-fits", "0", "--run-name", "folds-only"]
    code, out, err = call(runner, capsys, *flags)
    assert code == 0, err
    assert "full fit 1/" not in out and "ensemble: the average of 2 fold models" in out
    only = runner.runs / "folds-only"
    with np.load(only / "ensemble.npz") as z:
        np.testing.assert_array_equal(z["oof_proba"], np.load(run / "ensemble.npz")["oof_proba"])
        np.testing.assert_allclose(z["test_proba"], np.mean(folds, axis=0), rtol=1e-6)
    assert not (only / "full_1").exists()

    model = (run / "full_1" / "model.keras").stat().st_mtime_ns
    code, out, err = call(runner, capsys, "--data-dir", str(data), *FLAGS, "--run-name", "a")
    assert code == 0, err
    assert "full fit 1/1: finished in an earlier run, skipped" in out
    assert (run / "full_1" / "model.keras").stat().st_mtime_ns == model


def test_no_folds_trains_only_the_full_fits(tiny, capsys):
    """--folds 0: the quick submission. The full fit is the same model a k-fold run trains."""
    runner, data = tiny
    flags = ["--data-dir", str(data), *FLAGS, "--folds", "0", "--full-fits", "1"]
    code, out, err = call(runner, capsys, *flags, "--run-name", "nofolds")
    assert code == 0, err
    run = runner.runs / "nofolds"
    assert not list(run.glob("fold_*"))
    full = np.load(run / "full_1" / "predictions.npz")["test_proba"]
    # same seed and flags: bit for bit the full fit of the run with folds (deterministic)
    with_folds = np.load(runner.runs / "a" / "full_1" / "predictions.npz")["test_proba"]
    np.testing.assert_array_equal(full, with_folds)
    with np.load(run / "ensemble.npz") as z:
        assert "oof_proba" not in z.files and len(z["wrong_rows"]) == 0
        np.testing.assert_array_equal(z["test_proba"], full)
    sub = pd.read_csv(runner.subs / "nofolds.csv")
    assert (sub["Label"].to_numpy() == full.argmax(1)).all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds"] == [] and summary["oof_accuracy"] is None
    assert "out-of-fold accuracy: none (--folds 0 trains no folds" in out
    assert "-m 'nofolds: no folds, 1 full-data model" in out
    page = (run / "report.html").read_text()
    assert "No folds (<code>--folds 0</code>)" in page and "Out-of-fold errors" not in page
    figures = ["report_learning_curves.png", "report_test_classes.png"]
    assert re.findall(r'<img src="([^"]+)"', page) == figures
    # the control for the deterministic rerun: another seed gives other probabilities
    code, _, err = call(runner, capsys, *flags, "--run-name", "nofolds-s8", "--seed", "8")
    assert code == 0, err
    other = np.load(runner.runs / "nofolds-s8" / "full_1" / "predictions.npz")["test_proba"]
    assert not np.array_equal(other, full)
    # the page rebuilds from the run folder alone, like any run's
    (run / "report.html").unlink()
    code, out, err = call(runner, capsys, "--report", "nofolds")
    assert code == 0, err
    assert "No folds" in (run / "report.html").read_text()


def test_pseudo_labels_train_a_second_round_on_the_test_digits_the_first_is_sure_of(tiny, capsys):
    """--pseudo-labels P: the first round's sure test digits, labelled by it, join the
    training rows of a second round, whose model is the submission; a rerun resumes both."""
    runner, data = tiny
    pseudo = [*FLAGS, "--folds", "0", "--full-fits", "1", "--pseudo-labels", "0.5"]
    flags = ["--data-dir", str(data), *pseudo, "--run-name", "pseudo"]
    code, out, err = call(runner, capsys, *flags)
    assert code == 0, err
    run = runner.runs / "pseudo"
    first = np.load(run / "full_1" / "predictions.npz")["test_proba"]
    second = np.load(run / "pseudo_1" / "predictions.npz")["test_proba"]
    added = int(np.sum(first.max(axis=1) >= 0.5))
    assert 0 < added < 300  # a threshold that picks some digits, not all
    assert f"pseudo-labels: {added} of 300 test digits at probability >= 0.5 join the 1200" in out
    assert f"pseudo-label fit 1/1: train on all {1200 + added} rows, 5 epochs" in out
    assert len(re.findall(r"── time left: at most", out)) == 2  # after each round's first epoch
    with np.load(run / "ensemble.npz") as z:
        np.testing.assert_array_equal(z["test_proba"], second)  # the second round submits
    assert not np.allclose(second, first)
    sub = pd.read_csv(runner.subs / "pseudo.csv")
    assert (sub["Label"].to_numpy() == second.argmax(1)).all()
    truth = pd.read_csv(data / "solution.csv")["Label"].to_numpy()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pseudo_labels"] == {
        "threshold": 0.5, "added": added, "test_rows": 300,
        "first_round_test_accuracy": pytest.approx(float(np.mean(first.argmax(1) == truth))),
    }  # fmt: skip
    assert summary["test_accuracy"] == pytest.approx(float(np.mean(second.argmax(1) == truth)))
    assert [f["epochs"] for f in summary["pseudo_fits"]] == [5]
    assert (
        f"(the first round, before pseudo-labels: {np.mean(first.argmax(1) == truth):.4f})" in out
    )
    assert f"the average of 1 model trained on every training row and {added} pseudo-" in out

    code, out, err = call(runner, capsys, *flags)  # a rerun: both rounds were finished
    assert code == 0, err
    assert "full fit 1/1: finished in an earlier run" in out
    assert "pseudo-label fit 1/1: finished in an earlier run" in out and "Epoch 1/" not in out
    assert (runner.subs / "submission.csv").read_bytes() == (
        runner.subs / "pseudo.csv"
    ).read_bytes()
    # another threshold would change the second round's rows: resuming with it is refused
    err = resume_refused(tiny, capsys, [*FLAGS, "--pseudo-labels", "0.99"])
    assert "pseudo_labels 0.0 -> 0.99" in err
    # so would more first-round models (a run without pseudo-labels adds them: test_resume.py)
    err = resume_refused(tiny, capsys, [*pseudo, "--full-fits", "2"], run="pseudo")
    assert "full_fits 1 -> 2" in err


def test_the_seed_model_and_set_overrides_are_what_trains(tiny, capsys):
    runner, data = tiny
    quick = ["--data-dir", str(data), "--folds", "0", "--full-fits", "1", "--epochs", "2",
             "--trials", "0", "--seed", "7"]  # fmt: skip
    code, _, err = call(runner, capsys, *quick, "--model", "seed", "--set", "dense_units=64",
                        "--run-name", "seed-model")  # fmt: skip
    assert code == 0, err
    model = keras.saving.load_model(runner.runs / "seed-model" / "full_1" / "model.keras")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 32] and all(
        c.kernel_size == (5, 5) for c in convs
    )
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 3
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [64, 32, 10]  # --set dense_units=64 reached the builder
    sub = pd.read_csv(runner.subs / "seed-model.csv")
    truth = pd.read_csv(data / "solution.csv")["Label"]
    assert (sub["Label"] == truth).mean() > 0.3  # it trained (chance is 0.1)

    code, _, err = call(runner, capsys, *quick, "--set", "filters=16", "--run-name", "narrow")
    assert code == 0, err
    model = keras.saving.load_model(runner.runs / "narrow" / "full_1" / "model.keras")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 16, 16, 32, 32, 32, 64]
