"""The run's report page, the submission diff, and --submit through a stub kaggle CLI."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil

import numpy as np
import pytest

from conftest import NARROW, Runner, write_slice
from src.outputs.submission import compare_with_previous, digit_recognizer, make_submission

TINY = ["--folds", "2", "--epochs", "2", "--trials", "0", "--seed", "7", "--full-fits", "1",
        *NARROW]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sample_frames):
    """One tiny real run with a report; returns (runner, data dir, run folder, its output)."""
    root = tmp_path_factory.mktemp("report")
    data = write_slice(root / "data", sample_frames, 600, 100)
    runner = Runner(root, capsys=None)
    return runner, data, runner.runs / "tiny"


def call(runner, capsys, *args):
    runner.capsys = capsys
    return runner(*args)


@pytest.fixture(scope="module")
def printed(finished):
    """The summary lines of the run (captured without capsys: module scope)."""
    import contextlib
    import io

    runner, data, _ = finished
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        import run

        code = run.main([
            "--data-dir", str(data), *TINY, "--run-name", "tiny",
            "--runs-dir", str(runner.runs), "--submissions-dir", str(runner.subs),
        ])  # fmt: skip
    assert code == 0
    return buffer.getvalue()


def images_of(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_shows_the_runs_numbers_and_valid_images(finished, printed):
    _, _, run_dir = finished
    page = (run_dir / "report.html").read_text()
    names = images_of(page)
    assert {"report_learning_curves.png", "report_confusion_matrix.png",
            "report_wrong_gallery.png", "report_test_classes.png"} <= set(names)  # fmt: skip
    for name in names:
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2_000, name
    oof = re.search(r"out-of-fold accuracy: (\d\.\d{4})", printed).group(1)
    assert f"<td>{oof}</td>" in page
    folds = re.findall(r"^\s+\d+\s+(\d\.\d{4})\s", printed, flags=re.M)  # fold table rows
    assert len(folds) == 2  # the run's two folds, each printed and on the page
    assert all(f"<td>{accuracy}</td>" in page for accuracy in folds)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["command"] in html.unescape(page)
    assert json.loads((run_dir / "config.json").read_text())["params"]["filters"] == 8  # --set
    assert '"filters": 8' in page  # the config shown is the one that trained
    assert "The submission averages 1 full-data model" in page
    assert "<th>full fit</th>" in page


def test_gallery_shows_only_out_of_fold_mistakes(finished, printed, sample_frames):
    _, _, run_dir = finished
    page = (run_dir / "report.html").read_text()
    shown = [int(r) for r in re.search(r"rows shown: ([\d, ]+)</p>", page).group(1).split(", ")]
    labels = sample_frames[0]["label"].to_numpy()[:600]  # from the CSV, not the run's copy
    with np.load(run_dir / "ensemble.npz") as z:
        predicted = z["oof_proba"].argmax(axis=1)
        confidence = z["oof_proba"].max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    assert shown and set(shown) <= set(wrong)
    assert len(shown) == min(len(wrong), 32)
    assert list(confidence[shown]) == sorted(confidence[shown], reverse=True)  # most sure first


def digest(folder):
    files = [*folder.rglob("fold_*/*"), *folder.rglob("full_*/*")]
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).digest()) for p in files}


def test_report_flag_rebuilds_the_page_without_data_or_training(finished, printed, capsys):
    runner, data, run_dir = finished
    page = (run_dir / "report.html").read_text()
    folds = digest(run_dir)
    for path in [run_dir / "report.html", *run_dir.glob("report_*.png")]:
        path.unlink()
    hidden = data.with_name("elsewhere")
    data.rename(hidden)  # the report needs no data files
    try:
        code, out, err = call(runner, capsys, "--report", "tiny")
    finally:
        hidden.rename(data)
    assert code == 0, err
    assert (run_dir / "report.html").read_text() == page
    assert all((run_dir / n).read_bytes().startswith(PNG) for n in images_of(page))
    assert digest(run_dir) == folds  # models, histories, predictions untouched
    assert "Epoch" not in out  # nothing trained


def test_report_of_a_missing_run_is_one_line_exit_2(finished, capsys):
    runner, _, _ = finished
    code, out, err = call(runner, capsys, "--report", "no-such-run")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no-such-run" in err and "summary.json" in err


def test_diff_counts_changed_labels(tmp_path):
    labels = np.array([1, 2, 3, 4, 5, 6, 7, 8])
    old = make_submission(labels, digit_recognizer(8))
    path = tmp_path / "submission.csv"
    old.to_csv(path, index=False)
    shutil.copyfile(path, tmp_path / "run-a.csv")
    new_labels = labels.copy()
    new_labels[[1, 6]] = [9, 0]  # ImageIds 2 and 7
    diff = compare_with_previous(make_submission(new_labels, digit_recognizer(8)), path)
    assert (diff["changed"], diff["image_ids"]) == (2, [2, 7])
    assert "run-a.csv" in diff["previous"]  # names the run that wrote it
    assert compare_with_previous(old, path)["changed"] == 0
    other = make_submission(labels[:5], digit_recognizer(5))
    assert compare_with_previous(other, path)["reason"]  # another test set
    assert compare_with_previous(old, tmp_path / "none.csv") is None


def test_submit_without_credentials_is_refused_before_training(
    tmp_path, sample_frames, capsys, no_credentials
):
    """Knowable in the first second: refused before the data is read, nothing written."""
    data = write_slice(tmp_path / "data", sample_frames, 300, 50)
    runner = Runner(tmp_path, capsys)
    code, out, err = runner("--data-dir", str(data), *TINY, "--run-name", "s", "--submit",
                            "-m", "first try")  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--submit: no Kaggle credentials found" in err
    for way in ("KAGGLE_API_TOKEN", "kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        assert way in err
    assert "data:" not in out
    assert runner.written() == [] and not runner.runs.exists() and not runner.subs.exists()


def test_submit_sends_the_runs_file_with_its_message_and_no_secret(finished, printed, kaggle,
                                                                    capsys):  # fmt: skip
    """Through the real CLI to the stand-in of Kaggle's API: the run's own file, uploaded
    whole, with the message given; the token is never printed or recorded."""
    from kaggle_api import TOKEN

    runner, _, run_dir = finished
    code, out, err = call(runner, capsys, "--report", "tiny", "--submit", "-m", "fold ensemble v1",
                          "--competition", "digit-recognizer")  # fmt: skip
    assert code == 0, err
    path = runner.subs / "tiny.csv"
    assert f"submitting: kaggle competitions submit -c digit-recognizer -f {path}" in out
    assert "(credentials: KAGGLE_API_TOKEN)" in out
    sent = kaggle.submissions[0]
    assert (sent["bytes"], sent["description"]) == (path.read_bytes(), "fold ensemble v1")
    written = out + err + "".join(p.read_text() for p in run_dir.glob("*.json"))
    written += (run_dir / "report.html").read_text()
    assert TOKEN not in written


def test_a_failing_kaggle_call_exits_2_and_keeps_the_file(finished, printed, kaggle, capsys):
    runner, _, _ = finished
    kaggle.mode = "down"
    before = (runner.subs / "tiny.csv").read_bytes()
    code, out, err = call(runner, capsys, "--report", "tiny", "--submit")
    assert code == 2 and "kaggle exited with code 1: Kaggle said: 503 Server Error" in err
    assert (runner.subs / "tiny.csv").read_bytes() == before
