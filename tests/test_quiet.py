"""A quiet start: the first lines say data, device and run; TensorFlow's native start-up log
(absl notice, INFO lines, cuInit on a machine without a GPU) does not reach the user, while
anything else written to stderr still does."""

from __future__ import annotations

import os
import subprocess
import sys

from src.config import ROOT
from src.train.quiet import native_log_filtered

NOISE = ("I0000", "E0000", "cuInit", "oneDNN", "absl::InitializeLog", "cudart_stub",
         "rebuild TensorFlow", "Unable to register", "computation placer")  # fmt: skip


def test_native_noise_is_dropped_and_everything_else_kept(capfd):
    with native_log_filtered():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are"
                    b" written to STDERR\n")  # fmt: skip
        os.write(2, b"I0000 00:00:1795691545.586500   11586 port.cc:153] oneDNN custom ops\n")
        os.write(
            2,
            b"I0000 00:00:1795691545.586500   11586 cpu_feature_guard.cc:227] This"
            b" TensorFlow binary is optimized\nTo enable the following instructions:"
            b" AVX2, rebuild TensorFlow with the appropriate compiler flags.\n",
        )
        os.write(2, b"E0000 00:00:1795691549.727998   11586 cuda_platform.cc:52] failed call to"
                    b" cuInit: INTERNAL: CUDA error\n")  # fmt: skip
        os.write(2, b"E0000 00:00:1795691549.727998   11586 other.cc:1] a real error\n")
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == [  # (under capfd Python's stderr is not descriptor 2)
        "E0000 00:00:1795691549.727998   11586 other.cc:1] a real error",
        "a Python warning",
    ]


def test_tensorflow_2_19s_own_log_format_is_filtered_too(capfd):
    """The Kaggle image's TensorFlow 2.19 writes its own record heads and, at import, errors
    about CUDA plugins registered twice: noise; its other errors and warnings are kept."""
    records = [
        b"2026-11-26 16:36:02.141811: I tensorflow/core/util/port.cc:153] oneDNN custom ops on.",
        b"2026-11-26 16:36:02.179546: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc"
        b":467] Unable to register cuFFT factory: Attempting to register factory for plugin"
        b" cuFFT when one has already been registered",
        b"E0000 00:00:1795710962.205265   14453 cuda_dnn.cc:8579] Unable to register cuDNN"
        b" factory: Attempting to register factory for plugin cuDNN when one has already been"
        b" registered",
        b"W0000 00:00:1795710962.259896   14453 computation_placer.cc:177] computation placer"
        b" already registered. Please check linkage.",
        b"2026-11-26 16:36:06.891788: E external/local_xla/xla/stream_executor/cuda/"
        b"cuda_platform.cc:51] failed call to cuInit: INTERNAL",
        b"2026-11-26 16:36:07.000001: W tensorflow/core/x.cc:9] a real warning",
    ]
    with native_log_filtered():
        for record in records:
            os.write(2, record + b"\n")
    err = capfd.readouterr().err
    assert err.splitlines() == [
        "2026-11-26 16:36:07.000001: W tensorflow/core/x.cc:9] a real warning"
    ]


def test_a_cpu_run_starts_with_data_device_plan_and_run_and_no_native_log(tmp_path, small_dir):
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--data-dir", str(small_dir), "--folds", "0",
         "--full-fits", "1", "--epochs", "1", "--trials", "0", "--runs-dir", str(tmp_path / "r"),
         "--submissions-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["data", "device", "plan", "run"]
    assert lines[1].startswith("device: CPU, ")
    for word in NOISE:
        assert word not in done.stdout + done.stderr, word
