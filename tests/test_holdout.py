"""The Kaggle-size holdout benchmark's split: what each recipe trains on and is scored on."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import psutil

from benchmarks.holdout import changed_params, split_rows, write_split
from src.config import ROOT
from src.data.load import load_digits
from src.params import default_params


def test_the_split_is_stratified_disjoint_and_written_as_a_data_folder_run_py_reads(tmp_path):
    data = load_digits(ROOT / "input" / "sample")
    (train, held_out), *_ = split_rows(data.y_train, holdout=0.1, splits=1, seed=0)
    assert len(held_out) == 800 and len(train) == 7200
    assert not set(train) & set(held_out)  # no digit both trained on and scored
    shares = np.bincount(data.y_train[held_out], minlength=10) / len(held_out)
    expected = np.bincount(data.y_train, minlength=10) / len(data.y_train)
    assert np.abs(shares - expected).max() < 0.002  # every digit in its share
    again, _ = split_rows(data.y_train, holdout=0.1, splits=1, seed=0)[0]
    np.testing.assert_array_equal(train, again)  # seeded: every recipe sees the same split

    write_split(data, train, held_out, tmp_path / "split")
    split = load_digits(tmp_path / "split")  # validated as any user's data folder
    np.testing.assert_array_equal(split.x_train, data.x_train[train])
    np.testing.assert_array_equal(split.layout.classes[split.y_train],
                                  data.layout.classes[data.y_train[train]])  # fmt: skip
    np.testing.assert_array_equal(split.x_test, data.x_train[held_out])
    assert split.test_labels is None  # the run never sees the held-out labels
    assert split.layout.test_ids.tolist() == list(range(1, 801))


def test_a_blend_averages_the_runs_submission_probabilities(tmp_path):
    """Two runs that each get one digit wrong, confidently apart: their average gets both."""
    from benchmarks.holdout import blend

    truth = np.array([0, 1, 2])
    runs = []
    for name, proba in (("a", [[.9, .1, 0], [.6, .4, 0], [0, 0, 1]]),
                        ("b", [[.4, .6, 0], [0, 1, 0], [0, 0, 1]])):  # fmt: skip
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "ensemble.npz", test_proba=np.array(proba))
        runs.append(tmp_path / name)
    mixed = blend(runs, truth, classes=np.arange(3))
    assert mixed["acc"] == 1.0 and mixed["predicted"].tolist() == [0, 1, 2]
    assert blend(runs[:1], truth, np.arange(3))["acc"] == 2 / 3


def test_with_test_the_runs_test_csv_ends_with_the_competitions_and_only_the_held_out_count(
    tmp_path,
):
    """--with-test: the held-out digits first, then the competition's test digits (what a
    pseudo-label round would see on Kaggle); a run is scored on the held-out rows alone, and
    a pseudo-label run also by its first round's models."""
    import json

    import pandas as pd

    from benchmarks.holdout import score_run

    data = load_digits(ROOT / "input" / "sample")
    (train, held_out), *_ = split_rows(data.y_train, holdout=0.1, splits=1, seed=0)
    write_split(data, train, held_out, tmp_path / "split", with_test=True)
    split = load_digits(tmp_path / "split")
    np.testing.assert_array_equal(split.x_test, np.concatenate([data.x_train[held_out],
                                                                data.x_test]))  # fmt: skip

    truth = data.y_train[held_out]
    n_test = len(split.x_test)
    right, wrong = np.eye(10)[truth], np.eye(10)[(truth + 1) % 10]
    tail = np.full((n_test - len(truth), 10), 0.1)  # the unscored rows: any prediction
    run = tmp_path / "split" / "runs" / "r"
    for name, proba in (("full_1", wrong), ("pseudo_1", right)):  # round 2 fixes every digit
        (run / name).mkdir(parents=True)
        np.savez(run / name / "predictions.npz", test_proba=np.concatenate([proba, tail]))
    (run / "summary.json").write_text(json.dumps({"oof_accuracy": None}))
    (tmp_path / "split" / "subs").mkdir()
    labels = np.concatenate([truth, np.zeros(n_test - len(truth), dtype=int)])
    pd.DataFrame({"ImageId": np.arange(1, n_test + 1), "Label": labels}).to_csv(
        tmp_path / "split" / "subs" / "r.csv", index=False
    )
    scores = score_run(run, truth, data.layout.classes)
    assert scores["acc"] == 1.0 and scores["first"] == 0.0
    assert scores["models"] == {"full_1": len(truth), "pseudo_1": 0}  # each model alone
    assert len(scores["predicted"]) == len(truth)


def test_never_right_finds_the_digits_every_recipe_got_wrong_and_their_commonest_answer():
    """The floor the recipes share: a digit one recipe got right is not in it."""
    from benchmarks.holdout import never_right

    truth = np.array([4, 9, 3, 1])
    predicted = {"a": np.array([9, 4, 3, 7]),  # wrong on digits 0, 1, 3
                 "b": np.array([9, 9, 2, 7]),  # right on digit 1
                 "c": np.array([6, 4, 3, 2])}  # fmt: skip
    where, answer, share = never_right(predicted, truth)
    assert where.tolist() == [0, 3]
    assert answer.tolist() == [9, 7]  # 9 twice and 6 once; 7 twice and 2 once
    np.testing.assert_allclose(share, [2 / 3, 2 / 3])
    where, *_ = never_right({"a": truth.copy()}, truth)
    assert len(where) == 0


def test_compare_counts_the_digits_only_one_recipe_got_right_and_their_sign_test():
    """9 digits against 1 is a coin's split only 2 % of the time; 5 against 5 always."""
    from benchmarks.holdout import compare

    a = np.array([True] * 9 + [False] + [True] * 5 + [False] * 5 + [True, False])
    b = np.array([False] * 9 + [True] + [False] * 5 + [True] * 5 + [True, False])
    only_a, only_b, p = compare(a[:10], b[:10])
    assert (only_a, only_b) == (9, 1) and abs(p - 22 / 1024) < 1e-9  # 2 * (1 + 10) / 2**10
    assert compare(b[:10], a[:10]) == (1, 9, p)  # two-sided: the order does not matter
    assert compare(a[10:20], b[10:20])[2] == 1.0
    assert compare(a[20:], b[20:]) == (0, 0, 1.0)  # digits both got right or both wrong


def test_a_recorded_run_is_reused_only_while_its_flags_give_the_same_hyperparameters(tmp_path):
    """A run recorded before a default changed is named with what changed (not re-scored); one
    whose flags give what it trained with is re-scored; a search or a study chooses its own, so
    flags suffice."""
    config = tmp_path / "config.json"
    params = default_params("cnn")
    config.write_text(json.dumps({"params": {**params, "dropout": 0.4}}))
    assert changed_params("--folds 0 --set dropout=0.4", config) == ""
    assert changed_params("--folds 0", config) == f"dropout 0.4 -> {params['dropout']}"
    del params["clean_epochs"]  # a run from before the hyperparameter existed
    config.write_text(json.dumps({"params": params}))
    assert changed_params("--folds 0", config).startswith("clean_epochs unset -> ")
    assert changed_params("--folds 5 --trials 3", config) == ""
    assert changed_params("--folds 5 --study-name wide", config) == ""  # its best trial's


def test_the_classic_notebook_trains_once_per_split_and_seed_then_is_re_scored(tmp_path):
    """Its answers and time are recorded in the split's folder; a rerun reads them (no data
    needed: it does not train)."""
    from benchmarks.holdout import recorded_classic

    data = load_digits(ROOT / "input" / "sample")
    train, held_out = np.arange(0, 60), np.arange(60, 80)
    predicted, seconds = recorded_classic(data, train, held_out, 0, tmp_path)
    assert predicted.shape == (20,) and set(predicted) <= set(range(10)) and seconds > 0
    assert (tmp_path / "classic-seed0.npz").exists()
    again, again_s = recorded_classic(None, train, held_out, 0, tmp_path)  # would fail to train
    np.testing.assert_array_equal(again, predicted)
    assert again_s == seconds


def test_a_recorded_run_given_other_flags_for_the_same_run_keeps_its_recorded_time(tmp_path):
    """run.py resumes the finished model in seconds; the recipe's time stays the training's."""
    from benchmarks.holdout import run_recipe

    data = load_digits(ROOT / "input" / "sample")
    (train, held_out), *_ = split_rows(data.y_train, holdout=0.1, splits=1, seed=0)
    write_split(data, train[:300], held_out[:50], tmp_path)
    flags = "--folds 0 --full-fits 1 --epochs 1"
    trained, run_dir = run_recipe(flags, tmp_path, "tiny")
    record = run_dir / "holdout.json"
    record.write_text(json.dumps({"flags": flags, "seconds": 1000.0}))  # as if it took long
    again, _ = run_recipe(flags + " --set clean_epochs=2", tmp_path, "tiny")  # the default
    assert trained < 1000 < again < 1100  # resumed: the recorded time and a start-up
    assert json.loads(record.read_text())["seconds"] == again


def test_sigterm_stops_the_benchmark_and_the_run_it_waits_on(tmp_path):
    """`kill` of the benchmark takes its run.py with it: no run left training unwatched and
    holding its folder (the next benchmark would be refused it as running elsewhere)."""
    command = [sys.executable, "-m", "benchmarks.holdout", "--data-dir", str(ROOT / "input" /
               "sample"), "--rows", "400", "--no-classic", "--out", str(tmp_path),
               "long=--folds 0 --full-fits 1 --epochs 500"]  # fmt: skip
    log = tmp_path / "stderr.txt"  # a file: a pipe would stay open in an orphaned run.py
    with open(log, "w") as err:
        bench = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    started, runs = time.monotonic(), []
    while not any("run.py" in run.cmdline() for run in runs):  # exec'd, not just forked
        assert bench.poll() is None and time.monotonic() - started < 120, log.read_text()
        time.sleep(0.2)
        runs = psutil.Process(bench.pid).children()
    time.sleep(1)  # the benchmark is waiting on it
    (run,) = runs
    try:
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=60)
        assert not psutil.pid_exists(run.pid)  # killed with it, and reaped
        assert bench.returncode == 1 and "stopped by SIGTERM" in log.read_text()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):  # only where the test failed:
            run.kill()  # no orphan left training behind
