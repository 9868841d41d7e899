"""What a run tells the user at the end: a summary to act on, also saved as summary.json."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from src.outputs.files import show, write_json
from src.outputs.submission import describe_diff

if TYPE_CHECKING:  # the report is rebuilt without TensorFlow: no runtime import of src.train.folds
    from src.train.folds import FoldResult


def summarize(
    results: list[FoldResult],
    oof_accuracy: float | None,
    test_accuracy: float | None,
    seconds: float,
    full_fits: list | None = None,
) -> dict:
    """The run's headline numbers as a plain dict."""
    return {
        "full_fits": fit_rows(full_fits or []),
        "folds": [
            {
                "fold": r.fold + 1,
                "accuracy": r.accuracy,
                "epochs": r.epochs,
                "best_epoch": r.best_epoch,
                "seconds": r.seconds,
                "resumed": r.resumed,
            }
            for r in results
        ],
        "oof_accuracy": oof_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": seconds,
    }


def fit_rows(fits: list) -> list[dict]:
    """Full-data models (full fits or pseudo-label fits) as summary rows."""
    return [
        {"fit": f.index + 1, "epochs": f.epochs, "seconds": f.seconds, "resumed": f.resumed}
        for f in fits
    ]


def pseudo_round(chosen, n_test: int, pseudo_fits: list, first_accuracy: float | None) -> dict:
    """The pseudo-label round's part of the summary: what it added, its models, and the first
    round's accuracy on solution.csv (when there is one) to compare the submission's with."""
    return {
        "pseudo_labels": {
            "threshold": chosen.threshold,
            "added": len(chosen.rows),
            "test_rows": n_test,
            "first_round_test_accuracy": first_accuracy,
        },
        "pseudo_fits": fit_rows(pseudo_fits),
    }


def print_summary(summary: dict, submission, run_dir, command: list[str]) -> None:
    """Per-fold scores, OOF and answer-key accuracy, wall time, and how to submit."""
    print("\n══ summary ══")
    if summary["folds"]:
        print("fold  val_acc  best/epochs  seconds")
    for f in summary["folds"]:
        note = "  (earlier run)" if f["resumed"] else ""
        print(
            f"{f['fold']:>4}  {f['accuracy']:.4f}  {f['best_epoch']:>4}/{f['epochs']:<6}"
            f"  {f['seconds']:>7.0f}{note}"
        )
    for f in summary.get("full_fits", []):
        note = "  (earlier run)" if f["resumed"] else ""
        print(f"full {f['fit']:>2}  all rows  {f['epochs']:>4} epochs  {f['seconds']:>7.0f}{note}")
    pseudo = summary.get("pseudo_labels")
    for f in summary.get("pseudo_fits", []):
        note = "  (earlier run)" if f["resumed"] else ""
        print(f"pseudo {f['fit']:>2}  all rows + {pseudo['added']} test digits  {f['epochs']:>4}"
              f" epochs  {f['seconds']:>7.0f}{note}")  # fmt: skip
    if summary["oof_accuracy"] is None:
        print("out-of-fold accuracy: none (--folds 0 trains no folds; --folds K estimates it)")
    else:
        print(f"out-of-fold accuracy: {summary['oof_accuracy']:.4f}")
    print(f"ensemble: the average of {ensemble_of(summary)}")
    if summary["test_accuracy"] is not None:
        first = (pseudo or {}).get("first_round_test_accuracy")
        before = "" if first is None else f" (the first round, before pseudo-labels: {first:.4f})"
        print(f"test accuracy on solution.csv: {summary['test_accuracy']:.4f}{before}")
    print(f"wall time: {summary['seconds']:.0f} s")
    print(f"submission: {show(submission)}  (run folder: {show(run_dir)})")
    print(f"submission check: {describe_diff(summary.get('previous_diff'))}")
    print(f"submit it:  {shlex.join(command)}")


def ensemble_of(summary: dict) -> str:
    """Which models the submission averages, in words."""
    n_full = len(summary.get("full_fits", []))
    n_pseudo = len(summary.get("pseudo_fits", []))
    if n_pseudo:
        added = summary["pseudo_labels"]["added"]
        return (f"{n_pseudo} model{'s' * (n_pseudo > 1)} trained on every training row and"
                f" {added} pseudo-labelled test digits")  # fmt: skip
    if n_full:
        return f"{n_full} full-data model{'s' * (n_full > 1)} (trained on every training row)"
    return f"{len(summary['folds'])} fold models"


def headline(summary: dict) -> str:
    """The run in a few words, for a submission's message: folds and OOF accuracy."""
    if summary["oof_accuracy"] is None:
        return f"no folds, {ensemble_of(summary)}"
    return f"{len(summary['folds'])}-fold, OOF {summary['oof_accuracy']:.4f}"


def save_summary(summary: dict, run_dir) -> None:
    """summary.json in the run folder."""
    write_json(run_dir / "summary.json", summary)
