"""The batched engine (all of a run's models in one JAX program), on CPU JAX with tiny budgets.

Keras picks its backend once per process and this one runs TensorFlow, so everything here runs
in child processes with KERAS_BACKEND=jax: the engine's own checks (tests/jax_checks.py) and
whole `run.py --engine batched` runs, one of them killed with SIGKILL and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import NARROW, write_slice
from src.config import ROOT
from src.train import BATCHED_JAX
from src.train.engines import jax_too_old

# Kaggle's notebook image has a JAX older than the engine supports (requirements-min.txt, the
# oldest-versions run): there run.py refuses --engine batched and `auto` trains sequentially
# (tests/test_device.py checks both on that JAX); nothing here applies.
TOO_OLD = jax_too_old()
pytestmark = pytest.mark.skipif(
    TOO_OLD is not None,
    reason=f"the batched engine needs JAX {'.'.join(map(str, BATCHED_JAX))}; this is {TOO_OLD}",
)

# XLA's CPU compiler without its costly LLVM passes: the children compile their programs in
# about half the time; what the tests check is what the programs compute, not how fast.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()}  # fmt: skip
# float32 on every CPU: with AMX run.py would pick mixed_bfloat16, whose 5 epochs on these few
# digits land elsewhere; the engine's bfloat16 is the `precision` check's.
FLAGS = ["--folds", "2", "--epochs", "5", "--full-fits", "0", "--trials", "0", "--seed", "3",
         "--engine", "batched", "--precision", "float32", *NARROW]  # fmt: skip
# tests/jax_checks.py
CHECKS = ("steps", "scan_epoch", "orders", "early_stopping", "clean", "precision")


@pytest.fixture(scope="module")
def checked() -> dict:
    """Every engine check of tests/jax_checks.py, run in one JAX process."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "jax_checks.py"), *CHECKS],
        env=JAX_ENV, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("conv", ["matmul", "native"])
def test_a_vmapped_step_is_keras_own_train_step(checked, conv):
    """From the same weights and batches, four vmapped steps land where Keras's train_on_batch
    lands (dropout, BatchNorm, RandomWarp and weight decay included), and a twin stays a twin:
    with the convolutions as matrix products (the engine's default) and as Keras's own."""
    r, scale = checked["steps"][conv], checked["steps"]["weight_scale"]
    assert r["moved"] > 1e-3  # the steps changed the weights
    assert r["max_abs_diff"] < 5e-5 * scale  # float rounding, not another update
    assert r["max_abs_diff"] < 0.02 * r["moved"]
    assert r["twin_diff"] == 0.0  # a model beside it in the stack does not touch it
    assert r["other_diff"] > 0.01  # another seed: other weights


def test_an_epoch_as_one_scan_equals_step_by_step_calls(checked):
    """The GPU runs an epoch as one lax.scan per segment, the CPU step by step, and the tail
    where only the longer models train is a program of its own: same models every way."""
    r = checked["scan_epoch"]
    assert r["steps"] == [2, 3, 3]
    # all three models for two steps, then the last two, which have a third step (the stopped
    # one among them: masked); without the tail program, all three for three steps
    assert r["segments"]["scan"] == r["segments"]["steps"] == [[0, 2, 0], [2, 3, 1]]
    assert r["segments"]["scan_no_tail"] == [[0, 3, 0]]
    assert r["moved"] > 1e-3
    assert r["max_abs_diff"] < 0.1 * r["moved"]  # not another batch, rate or mask
    assert r["no_tail_diff"] < 0.1 * r["moved"]
    assert r["loss_diff"] < 1e-3
    assert r["stopped_unchanged"]


@pytest.mark.parametrize(
    ("steps", "segments"),
    [
        # Kaggle's 42,000 rows: 5 fold models (525 or 526 steps), then 3 full fits (657)
        ([525, 526, 525, 526, 525, 657, 657, 657], [(0, 526, 0), (526, 657, 5)]),
        ([100] * 5, [(0, 100, 0)]),  # fold models only: nothing to leave out
        ([591] * 10 + [657] * 3, [(0, 657, 0)]),  # 10 folds: it would save 7.7 %, not worth it
        ([657, 525, 525, 525], [(0, 657, 0)]),  # the longer model is not at the end
        ([2, 3, 3], [(0, 2, 0), (2, 3, 1)]),
    ],
)
def test_the_epochs_tail_trains_only_the_models_with_more_steps(steps, segments):
    from src.train.batched_program import epoch_segments

    assert epoch_segments(np.array(steps)) == segments


def test_each_fold_model_trains_only_on_its_own_rows(checked):
    r = checked["orders"]
    assert r == {"subset": True, "covers": True, "steps_ok": True, "reshuffled": True,
                 "models_differ": True}  # fmt: skip


def test_early_stopping_hands_back_the_best_epoch(checked):
    r = checked["early_stopping"]
    fold, full = r["fold_1"], r["full_1"]
    losses = fold["val_loss"]
    assert fold["best_epoch"] == int(np.argmin(losses)) + 1 == 1  # shuffled labels: first best
    assert fold["epochs"] == fold["best_epoch"] + 2 < 8  # stopped after --patience 2
    # the weights handed back are that epoch's: the saved model scores its loss exactly
    assert fold["saved_model_val_loss"] == pytest.approx(losses[0], rel=1e-5)
    assert fold["saved_model_val_loss"] != pytest.approx(losses[-1], rel=1e-3)
    assert fold["val_proba_matches_model"]
    assert full["epochs"] == 8  # nothing held out: every epoch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, sample_frames):
    return write_slice(tmp_path_factory.mktemp("batched") / "data", sample_frames, 1280, 300)


def run_py(data_dir, out, *extra, subs=None) -> subprocess.Popen:
    outputs = ["--runs-dir", str(out / "runs"), "--submissions-dir", str(subs or out / "subs")]
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data_dir), *FLAGS, *outputs,
           *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=JAX_ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    return out, finish(run_py(data_dir, out, "--run-name", "whole"))


def test_the_last_clean_epochs_train_as_without_augmentation(checked):
    """`clean_epochs`: an epoch with the switch off lands where a run without augmentation
    lands; an augmented epoch does not; each model's switch is on, then off. The same in
    Keras's fit on JAX (the sequential engine), where the callback turns the switch off for
    the last epoch: that epoch trains otherwise than an augmented one."""
    r = checked["clean"]
    assert r["clean_vs_none"] < 1e-5  # float rounding at most
    assert r["augmented_vs_none"] > 1e-3
    assert r["switch"] == [[[1.0, 1.0]], [[0.0, 0.0]]]  # after epoch 1, after epoch 2
    assert r["fit_clean_vs_none"] < 1e-5
    assert r["fit_last_clean_vs_augmented"] > 1e-3


def test_every_model_computes_in_the_chosen_precision(checked):
    """--precision mixed_bfloat16 reaches every model of the stack, not only the first: the
    engine resets Keras before each model, which on its own puts the policy back to float32."""
    r = checked["precision"]
    assert r["program"] == ["bfloat16"]
    assert r["handed_over"] == {"full_1": ["bfloat16"], "full_2": ["bfloat16"]}
    assert r["losses_finite"] and r["policy_after"] == "mixed_bfloat16"


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--augment", "layers"],  # Keras's preprocessing layers inside a JAX program
         "error: --augment layers needs the TensorFlow backend; use --augment affine"),
        (["--precision", "mixed_float16"],  # float16 gradients without loss scaling
         "error: --engine batched: --precision mixed_float16 needs loss scaling, which this"
         " engine does not do; use --precision mixed_bfloat16"),
    ],
)  # fmt: skip
def test_settings_the_engine_cannot_honour_are_refused_before_anything_is_written(
    data_dir, tmp_path, flags, error
):
    """One line, exit 2, no run folder (a corrected rerun with the same --run-name would
    otherwise be refused as a resume of another run's settings)."""
    proc = run_py(data_dir, tmp_path, *flags, "--run-name", "x")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out[-3000:]
    assert out.strip().splitlines()[-1] == error
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_batched_run_trains_every_fold_and_says_so(uninterrupted, data_dir):
    out, log = uninterrupted
    assert "engine: batched, 2 models in one program" in log
    assert log.count("── time left: at most ") == 1  # the models train together: one line
    run = out / "runs" / "whole"
    summary = json.loads((run / "summary.json").read_text())
    engine = summary["engine"]
    assert engine["name"] == "batched" and engine["models"] == 2
    # where the run's seconds went: building, 5 epochs, handing over, all within the run
    assert engine["setup_s"] > 0 and engine["handover_s"] > 0
    assert engine["first_epoch_s"] + 4 * engine["median_epoch_s"] == pytest.approx(
        engine["epochs_s"], rel=0.5)  # fmt: skip
    assert engine["setup_s"] + engine["epochs_s"] + engine["handover_s"] < summary["seconds"]
    assert summary["oof_accuracy"] > 0.3  # chance is 0.1
    for fold in (1, 2):
        history = json.loads((run / f"fold_{fold}" / "history.json").read_text())
        assert len(history["val_loss"]) == 5
    sub = pd.read_csv(out / "subs" / "submission.csv")
    truth = pd.read_csv(data_dir / "solution.csv")["Label"]
    assert (sub["Label"] == truth).mean() > 0.3
    assert not (run / "checkpoint.npz").exists()  # removed once every model is saved
    # a fold's model.keras is a plain Keras model that predicts what the run recorded
    check = (
        "import keras, numpy as np, sys\n"
        f"m = keras.saving.load_model({str(run / 'fold_1' / 'model.keras')!r})\n"
        f"z = np.load({str(run / 'fold_1' / 'predictions.npz')!r})\n"
        "import pandas as pd\n"
        f"x = pd.read_csv({str(data_dir / 'train.csv')!r}).iloc[z['val_idx'], 1:]\n"
        "p = m.predict(x.to_numpy('float32').reshape(-1, 28, 28, 1), verbose=0)\n"
        "print(float(np.abs(p - z['val_proba']).max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", check], env=JAX_ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-4


def test_a_run_killed_mid_training_resumes_to_the_same_submission(
    uninterrupted, data_dir, tmp_path
):
    """Killed after its first checkpoint and run again: the uninterrupted run's submission,
    finished epochs not redone. Both runs share the uninterrupted run's runs folder, so they
    also show the compile cache: every program XLA compiled for the first run is in
    runs/.jax-cache, and these same settings compile nothing new (no new file)."""
    whole, first_log = uninterrupted
    cache = whole / "runs" / ".jax-cache"
    assert f"compiled programs kept in {cache}" in first_log
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) > 5  # the train, score and predict programs at least
    subs = tmp_path / "subs"
    proc = run_py(data_dir, whole, "--run-name", "killed", subs=subs)
    checkpoint = whole / "runs" / "killed" / "checkpoint.npz"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint was written"
    time.sleep(1.0)  # somewhere in the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (subs / "submission.csv").exists()  # it was killed before the end

    log = finish(run_py(data_dir, whole, "--run-name", "killed", subs=subs))
    assert "engine: batched, 2 models in one program" in log
    assert "batched: resumed at epoch" in log
    resumed_at = int(log.split("batched: resumed at epoch ")[1].split()[0])
    assert log.count("epoch 1/5 ") == 0 and resumed_at >= 2  # finished epochs not redone
    assert log.count("── time left: at most ") == 1  # said at the first epoch it trained
    whole_sub = (whole / "subs" / "submission.csv").read_bytes()
    assert (subs / "submission.csv").read_bytes() == whole_sub
    a = np.load(whole / "runs" / "whole" / "ensemble.npz")
    b = np.load(whole / "runs" / "killed" / "ensemble.npz")
    np.testing.assert_array_equal(a["oof_proba"], b["oof_proba"])
    assert not list((whole / "runs").rglob(".*tmp*")), "temporary files left behind"
    assert sorted(p.name for p in cache.iterdir()) == cached  # every program from the cache


def test_the_plateau_schedule_lowers_each_models_rate_as_keras_does():
    """The batched engine's host-side ReduceLROnPlateau, per model, against Keras's own callback
    fed the same validation accuracies (no training needed: the decisions are the point)."""
    import keras

    from src.params import default_params
    from src.train.batched import BatchedEngine
    from src.train.engine import Job

    params = {**default_params("cnn"), "schedule": "plateau", "learning_rate": 1e-3}
    accuracies = [0.5, 0.6, 0.6, 0.60005, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    # Keras: the callback of src/train/fit.py, on a compiled model
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    callback = keras.callbacks.ReduceLROnPlateau(  # src/train/fit.py's, whose "auto" is max there
        monitor="val_accuracy", mode="max", patience=3, factor=0.5, min_lr=1e-5
    )
    callback.set_model(model)
    keras_rates = []
    for epoch, acc in enumerate(accuracies):
        callback.on_epoch_end(epoch, {"val_accuracy": acc})
        keras_rates.append(float(np.asarray(model.optimizer.learning_rate)))
    # the batched engine's bookkeeping, for one validated model
    engine = BatchedEngine(params, None, epochs=len(accuracies), patience=99, augment="none")
    engine.jobs, engine.n_val = [Job("fold", 1, np.arange(2), np.arange(2), 0)], 1
    host = {"active": np.ones(1, bool), "lr": np.full(1, 1e-3, np.float32),
            "plateau_best": np.full(1, -np.inf), "plateau_wait": np.zeros(1, np.int64),
            "wait": np.zeros(1, np.int64), "best_loss": np.full(1, np.inf, np.float32),
            "history": [{}]}  # fmt: skip
    rates = []
    for epoch, acc in enumerate(accuracies):
        metrics = {"loss": [1.0], "accuracy": [acc], "val_loss": [1.0], "val_accuracy": [acc],
                   "learning_rate": host["lr"].copy(), "improved": [epoch == 0]}  # fmt: skip
        engine._after_epoch(epoch, metrics, host, None)
        rates.append(float(host["lr"][0]))
    assert rates == pytest.approx(keras_rates, rel=1e-6)
    assert rates[-1] < rates[5] < rates[0]  # it did lower the rate, twice at least
