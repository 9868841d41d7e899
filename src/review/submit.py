"""A finished run's review and its life on Kaggle: rebuild its page (`--report RUN`), check and
submit its submission (`--submit`), wait for the public score (`--wait`), and fetch the scores
of runs submitted earlier (`--scores`). What Kaggle said is kept in the run's summary.json
under "kaggle" and shown on its page."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from src import UserError
from src.config import Config, flag_of
from src.outputs.files import read_json, show, write_json


def review(cfg: Config) -> None:
    """--report RUN: rebuild the run's page; with --submit, check and submit its submission."""
    from src.review.kaggle_cli import check_ready
    from src.review.report import build_report

    if cfg.submit:
        check_ready(flag_of("submit"))  # before the page is rebuilt: a refusal writes nothing
    start = time.perf_counter()
    page = build_report(cfg.run_dir)
    print(f"report: {show(page)} (built in {time.perf_counter() - start:.1f} s)")
    if cfg.submit:
        check_run_submission(cfg)
        submit_and_record(cfg, message_for(cfg, read_json(cfg.run_dir / "summary.json")))


def message_for(cfg: Config, summary: dict) -> str:
    """The submission's message: --message, else the run's name and headline."""
    from src.review.summary import headline

    return cfg.message or f"{cfg.run_name}: {headline(summary)}"


def check_run_submission(cfg: Config) -> None:
    """The run-named copy of a finished run's submission, checked again before it is sent."""
    import numpy as np
    import pandas as pd

    from src.data.load import Layout
    from src.outputs.submission import (
        check_submission,
        compare_with_previous,
        describe_diff,
    )

    path = cfg.submissions_dir / f"{cfg.run_name}.csv"
    if not path.exists():
        raise UserError(f"{show(path)}: no such file; --report --submit sends a run's own copy")
    with np.load(cfg.run_dir / "ensemble.npz") as z:
        layout = Layout.from_arrays(z)
    try:
        sub = pd.read_csv(path)
        check_submission(sub, layout)
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{show(path)}: not a valid submission ({e}); rerun the run") from None
    latest = cfg.submissions_dir / "submission.csv"
    print(f"submission check: {describe_diff(compare_with_previous(sub, latest))}")


def submit_and_record(cfg: Config, message: str) -> None:
    """Send the run's own copy of its submission; record it; with --wait, its score too."""
    from src.review import kaggle_cli

    path = cfg.submissions_dir / f"{cfg.run_name}.csv"
    ref = kaggle_cli.submit(path, message, cfg.competition)
    entry = {"competition": cfg.competition, "message": message, "file": path.name, "ref": ref,
             "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
             "status": "submitted", "public_score": None, "private_score": None}  # fmt: skip
    record(cfg.run_dir, entry)
    if not cfg.wait:
        print("scores: `python run.py --scores` fetches them once Kaggle has scored it")
        return
    print(f"waiting for Kaggle's score (up to {cfg.wait_timeout:g} s)", flush=True)
    row = kaggle_cli.wait_for_score(cfg.competition, ref, message, path.name, cfg.wait_timeout)
    if row is None:
        print(f"not scored after {cfg.wait_timeout:g} s; `python run.py --scores` fetches the"
              " score later")  # fmt: skip
        return
    summary = record(cfg.run_dir, {**entry, **scores_of(row)})
    print(score_line(cfg.run_name, summary["kaggle"], summary))


def scores_of(row: dict) -> dict:
    """A submissions-list row's status and scores (None where Kaggle shows none)."""
    from src.review.kaggle_cli import FAILED, SCORED

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    status = {SCORED: "scored", FAILED: "failed"}.get(row.get("status"), "submitted")
    return {"status": status, "ref": row.get("ref"),
            "public_score": number(row.get("publicScore")),
            "private_score": number(row.get("privateScore"))}  # fmt: skip


def record(run_dir: Path, entry: dict) -> dict:
    """Store what Kaggle said under "kaggle" in summary.json and rebuild the page; the summary
    as saved."""
    from src.review.report import build_report

    summary = read_json(run_dir / "summary.json")
    summary["kaggle"] = entry
    write_json(run_dir / "summary.json", summary)
    build_report(run_dir)
    return summary


def score_line(run_name: str, entry: dict, summary: dict) -> str:
    """One line: the run, Kaggle's public (and private) score, and its out-of-fold accuracy."""
    oof = summary.get("oof_accuracy")
    cv = "no folds" if oof is None else f"out-of-fold {oof:.4f}"
    if entry["status"] == "failed":
        return f"{run_name}: Kaggle could not score it (see the competition's submissions page)"
    if entry.get("public_score") is None:
        return f"{run_name}: not scored yet ({entry['status']}); {cv}"
    private = entry.get("private_score")
    also = "" if private is None else f", private {private:.5f}"
    return f"{run_name}: public score {entry['public_score']:.5f}{also}  ({cv})"


def fetch_scores(cfg: Config) -> None:
    """--scores: for every run submitted but not scored yet, read Kaggle's score and record it
    (one submissions list per competition)."""
    from src.review import kaggle_cli

    waiting = []
    for summary_path in sorted(cfg.runs_dir.glob("*/summary.json")):
        try:
            entry = read_json(summary_path).get("kaggle")
        except ValueError:
            continue  # a broken folder: --runs shows it
        if entry and entry.get("public_score") is None and entry.get("status") != "failed":
            waiting.append((summary_path.parent, entry))
    if not waiting:
        print(f"scores: no run in {show(cfg.runs_dir)} waits for a score")
        return
    lists = {}
    for run_dir, entry in waiting:
        competition = entry["competition"]
        if competition not in lists:
            lists[competition] = kaggle_cli.list_submissions(competition)
        row = kaggle_cli.find(lists[competition], entry.get("ref"), entry["message"],
                              entry["file"])  # fmt: skip
        if row is None:
            print(f"{run_dir.name}: not among the submissions of {competition} that Kaggle lists")
            continue
        summary = record(run_dir, {**entry, **scores_of(row)})
        print(score_line(run_dir.name, summary["kaggle"], summary))
