"""Every check before the first byte: a refused run ends in one line, exit 2, and leaves nothing
in the runs or submissions folder (no lock, no config.json, no study, no folder). The checks
that need a trained run folder are in test_pipeline.py; the notebook's in test_remote.py."""

from __future__ import annotations

from pathlib import Path

import run
from conftest import NARROW
from src.review.kaggle_cli import credential_source

TINY = ["--folds", "2", "--epochs", "1", "--full-fits", "1", "--trials", "0", *NARROW]


def refused(runner, *flags: str) -> tuple[str, str]:
    """Run with `flags`: exit 2, one line on stderr, nothing written; (stdout, stderr)."""
    code, out, err = runner(*flags)
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()], err
    assert runner.written() == [] and not runner.runs.exists() and not runner.subs.exists()
    return out, err


def test_report_submit_without_credentials_rebuilds_nothing(runner, no_credentials):
    _, err = refused(runner, "--report", "r", "--submit")
    assert "no Kaggle credentials found" in err


def test_a_storage_that_cannot_be_opened_leaves_no_lock(runner, small_dir):
    _, err = refused(runner, "--data-dir", str(small_dir), *TINY, "--trials", "2", "--storage",
                     "sqlite:////no/such/dir/x.db", "--run-name", "s")  # fmt: skip
    assert "--storage sqlite:////no/such/dir/x.db: cannot open" in err


def test_no_secret_of_a_storage_url_is_printed_or_recorded(runner, small_dir):
    url = "postgresql://digits:hunter2@127.0.0.1:9/db?sslpassword=open-sesame"  # port 9: refused
    _, err = refused(runner, "--data-dir", str(small_dir), *TINY, "--trials", "2", "--storage",
                     url, "--run-name", "s")  # fmt: skip
    assert "--storage postgresql://digits:***@127.0.0.1:9/db?sslpassword=***: cannot open" in err
    assert "hunter2" not in err and "open-sesame" not in err
    command = run.command_line(["--storage=" + url, "-m", "no secret here"])
    assert "hunter2" not in command and "open-sesame" not in command
    assert "--storage=postgresql://digits:***@127.0.0.1:9/db?sslpassword=***" in command


def test_a_missing_study_to_train_from_leaves_nothing(runner, small_dir):
    _, err = refused(runner, "--data-dir", str(small_dir), *TINY, "--study-name", "never")
    assert "--study-name never:" in err and "search first with --trials N" in err


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_credentials_are_found_where_the_kaggle_cli_looks(tmp_path):
    """kaggle 2.2.5's order (src/review/kaggle_cli.py): the XDG folder only when ~/.kaggle does
    not exist, kaggle.json in KAGGLE_CONFIG_DIR instead of ~/.kaggle, a token file that is
    empty is no token."""
    home = tmp_path / "home"
    xdg_token = write(home / ".config" / "kaggle" / "kaggle.json", '{"username": "u", "key": "k"}')
    assert credential_source({}, home) == str(xdg_token)  # no ~/.kaggle: the XDG folder
    (home / ".kaggle").mkdir()
    assert credential_source({}, home) is None  # ~/.kaggle exists: the CLI never looks there
    token = write(home / ".kaggle" / "access_token", "tok")
    assert credential_source({}, home) == str(token)
    token.write_text("\n")
    assert credential_source({}, home) is None  # an empty token file
    assert credential_source({"KAGGLE_API_TOKEN": "tok"}, home) == "KAGGLE_API_TOKEN"
    empty = write(tmp_path / "empty-token", "")
    assert credential_source({"KAGGLE_API_TOKEN": str(empty)}, home) is None
    legacy = write(tmp_path / "conf" / "kaggle.json", '{"username": "u", "key": "k"}')
    assert credential_source({"KAGGLE_CONFIG_DIR": str(legacy.parent)}, home) == str(legacy)
    write(home / ".kaggle" / "kaggle.json", '{"username": "u"}')  # no key: not enough alone
    assert credential_source({}, home) is None
    assert credential_source({"KAGGLE_KEY": "k"}, home) == "KAGGLE_KEY"
