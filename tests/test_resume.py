"""Nothing lost: a run killed with SIGKILL at any stage (here two; `python -m
tests.stress_kill` kills at random moments) resumes to the uninterrupted run's exact
submission without redoing finished models; damaged or foreign run folders, a second process
on the same run, and other data are each one clear line, never a traceback."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NARROW, Runner, write_slice
from src.config import ROOT
from src.outputs.run_folder import changes

FLAGS = ["--folds", "2", "--epochs", "3", "--full-fits", "2", "--trials", "0", "--seed", "11",
         "--deterministic", *NARROW]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sample_frames):
    """An uninterrupted deterministic run: (root, data dir, its submission's bytes)."""
    root = tmp_path_factory.mktemp("resume")
    data = write_slice(root / "data", sample_frames, 800, 200)
    runner = Runner(root / "ref", capsys=None)
    runner.capsys = _Quiet()
    code, _, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "ref")
    assert code == 0, err
    return root, data, (runner.subs / "ref.csv").read_bytes()


class _Quiet:
    """A capsys stand-in for a module-scoped fixture (output is not inspected)."""

    def readouterr(self):
        return "", ""


def start(data: Path, out: Path, name: str) -> subprocess.Popen:
    outputs = ["--runs-dir", str(out / "runs"), "--submissions-dir", str(out / "subs")]
    cmd = [sys.executable, str(ROOT / "run.py"), "--data-dir", str(data), *FLAGS, "--run-name",
           name, *outputs]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(proc: subprocess.Popen, ready: Path, delay: float) -> None:
    """SIGKILL `proc` `delay` seconds after `ready` appears (it must appear)."""
    deadline = time.monotonic() + 300
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[0][-2000:]
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


@pytest.mark.parametrize(
    "stage, ready, delay",
    [
        ("during fold 2", "fold_1/predictions.npz", 1.0),
        ("during the full fits", "full_1/predictions.npz", 0.5),
    ],
)
def test_a_killed_run_resumes_to_the_same_submission(reference, tmp_path, stage, ready, delay):
    root, data, expected = reference
    previous = tmp_path / "subs" / "submission.csv"
    previous.parent.mkdir(parents=True)
    previous.write_text("ImageId,Label\n1,7\n")  # the last submission before this run
    run = tmp_path / "runs" / "killed"
    kill_when(start(data, tmp_path, "killed"), run / ready, delay)
    assert previous.read_text() == "ImageId,Label\n1,7\n"  # untouched by the killed run
    kept = {p: p.stat().st_mtime_ns for p in run.glob("*/model.keras")
            if (p.parent / "predictions.npz").exists()}  # fmt: skip

    proc = start(data, tmp_path, "killed")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert (tmp_path / "subs" / "killed.csv").read_bytes() == expected, stage
    assert previous.read_bytes() == expected
    for model, mtime in kept.items():  # finished models were not trained again
        assert model.stat().st_mtime_ns == mtime, model
    assert out.count("finished in an earlier run, skipped") == len(kept)
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name], "temporary files left"


def test_copies_added_to_a_finished_run_make_the_submission_asked_for_at_once(
    reference, tmp_path, capsys
):
    """A finished run rerun with more --full-fits keeps its models and trains only the new
    copies, to the submission the run makes with them from the start; with fewer it averages
    fewer, training nothing."""
    _, data, expected = reference
    runner = Runner(tmp_path, capsys)
    one = [*FLAGS, "--full-fits", "1"]  # the last value counts
    code, _, err = runner("--data-dir", str(data), *one, "--run-name", "grow")
    assert code == 0, err
    one_copy = (runner.subs / "grow.csv").read_bytes()
    run = runner.runs / "grow"
    kept = {p: p.stat().st_mtime_ns for p in run.glob("*/model.keras")}
    assert sorted(p.parent.name for p in kept) == ["fold_1", "fold_2", "full_1"]

    code, out, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "grow")
    assert code == 0, err
    assert out.count("finished in an earlier run, skipped") == 3
    assert "full fit 2/2: train on all" in out and out.count("Epoch 1/") == 1
    assert all(model.stat().st_mtime_ns == mtime for model, mtime in kept.items())
    assert (runner.subs / "grow.csv").read_bytes() == expected != one_copy

    code, out, err = runner("--data-dir", str(data), *one, "--run-name", "grow")
    assert code == 0, err
    assert "Epoch 1/" not in out
    assert (runner.subs / "grow.csv").read_bytes() == one_copy


def copy_of_reference(reference, tmp_path: Path, name: str) -> tuple[Runner, Path, Path]:
    root, data, _ = reference
    runner = Runner(tmp_path, capsys=None)
    shutil.copytree(root / "ref" / "runs" / "ref", runner.runs / name)
    return runner, data, runner.runs / name


def test_a_damaged_model_folder_is_trained_again(reference, tmp_path, capsys):
    runner, data, run = copy_of_reference(reference, tmp_path, "damaged")
    runner.capsys = capsys
    npz = run / "fold_1" / "predictions.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated, as a full disk or a bad copy leaves it
    (run / "full_2" / "fit.json").write_text("{")  # and a broken metadata file
    keras_file = run / "full_1" / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:-5000])  # and a truncated model
    code, out, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "damaged")
    assert code == 0, err
    for name in ("fold_1", "full_1", "full_2"):
        assert f"{name}: damaged (" in out
    assert "fold 1/2: train on" in out and "full fit 2/2: train on" in out
    assert "full fit 1/2: train on" in out
    assert "fold 2/2: finished in an earlier run, skipped" in out
    assert (runner.subs / "damaged.csv").read_bytes() == reference[2]


def test_a_run_folder_without_its_config_is_refused(reference, tmp_path, capsys):
    runner, data, run = copy_of_reference(reference, tmp_path, "orphan")
    runner.capsys = capsys
    (run / "config.json").unlink()
    before = sorted(p.stat().st_mtime_ns for p in run.rglob("*"))
    code, _, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "orphan")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "holds trained models but no config.json" in err and "--run-name" in err
    assert sorted(p.stat().st_mtime_ns for p in run.rglob("*")) == before


def test_resuming_on_other_data_is_refused(reference, tmp_path, capsys, sample_frames):
    runner, _, run = copy_of_reference(reference, tmp_path, "moved")
    runner.capsys = capsys
    other = write_slice(tmp_path / "other", sample_frames, 790, 200)
    code, _, err = runner("--data-dir", str(other), *FLAGS, "--run-name", "moved")
    assert code == 2
    assert "data '800 train, 200 test, sha1" in err and "-> '790 train, 200 test" in err


def test_a_second_process_on_the_same_run_is_refused_until_the_first_dies(
    reference, tmp_path, capsys
):
    runner, data, _ = copy_of_reference(reference, tmp_path, "busy")
    runner.capsys = capsys
    lock = runner.runs / ".busy.lock"
    holder = subprocess.Popen(  # another process holding the run, as a training run does
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    code, _, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "busy")
    assert code == 2
    assert "another process is running it now" in err
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # freed by the holder's death
    os.close(fd)
    code, out, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "busy")
    assert code == 0, err


def test_a_run_recorded_before_a_setting_existed_resumes_while_it_is_off(
    reference, tmp_path, capsys
):
    """A setting added since a run was recorded reads as off in its record: the run resumes
    (nothing trains again, the same submission) while the setting is off today, and is refused,
    naming the setting, once it is on."""
    runner, data, run = copy_of_reference(reference, tmp_path, "older")
    runner.capsys = capsys
    config = json.loads((run / "config.json").read_text())
    del config["params"]["weight_decay"], config["settings"]["pseudo_labels"]
    (run / "config.json").write_text(json.dumps(config))
    code, out, err = runner("--data-dir", str(data), *FLAGS, "--run-name", "older")
    assert code == 0, err
    assert out.count("finished in an earlier run, skipped") == 4 and "Epoch 1/" not in out
    assert (runner.subs / "older.csv").read_bytes() == reference[2]
    code, _, err = runner("--data-dir", str(data), *FLAGS, "--set", "weight_decay=0.01",
                          "--run-name", "older")  # fmt: skip
    assert code == 2 and "weight_decay unset -> 0.01" in err


def test_a_setting_one_record_lacks_differs_only_where_the_other_has_it_on():
    recorded = {"same": 1, "changed": 1, "removed_on": 3, "removed_off": 0.0}
    today = {"same": 1, "changed": 2, "added_off": 0.0, "added_on": 2, "added_false": False}
    assert changes(recorded, today) == ["changed 1 -> 2", "added_on unset -> 2",
                                        "removed_on 3 -> unset"]  # fmt: skip
