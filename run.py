"""Digit Recognizer end to end: validate the CSVs, train a k-fold CNN ensemble, write a submission.

    python run.py --folds 5                              # Kaggle's data in input/
    python run.py --data-dir input/sample --folds 5      # the bundled real sample
    python run.py --folds 0 --full-fits 1 --epochs 12 --trials 0   # quick: one model, all rows

Reads train.csv and test.csv, trains one model per stratified fold with augmentation (the
out-of-fold accuracy), then --full-fits models on every training row, averages their
probabilities on test.csv and writes submissions/submission.csv. Artifacts of a run (models,
histories, predictions) go to runs/<run-name>/; the same --run-name resumes a run.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import replace
from importlib.util import find_spec

from src.cli import parse_args
from src.config import Config
from src.data import load_digits, show
from src.errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
# JAX would take most of a GPU's memory up front; trial processes sharing the card need it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "KERAS_BACKEND" not in os.environ and not find_spec("tensorflow") and find_spec("jax"):
    os.environ["KERAS_BACKEND"] = "jax"  # a GPU install (requirements-gpu.txt) has no TensorFlow


def choose_params(cfg: Config, data) -> tuple[dict, str]:
    """Search, or read a study's best trial, or take the model's defaults; and say which.

    The run folder is checked against the chosen parameters before anything is written to it.
    """
    from src import run_folder, search
    from src.files import write_json
    from src.params import default_params
    from src.storage import mask_password

    changed = "".join(f" --set {k}={v}" for k, v in cfg.overrides)
    if not cfg.trials and not cfg.study_name:
        params = {**default_params(cfg.model), **dict(cfg.overrides)}
        run_folder.prepare(cfg, params)
        return params, f"defaults of --model {cfg.model}{changed}"
    if cfg.trials:
        study, seconds = timed_search(cfg, data)
    else:
        cfg.runs_dir.mkdir(parents=True, exist_ok=True)  # home of the default SQLite storage
        study, seconds = search.open_study(cfg, create=False), 0.0
    params = search.best_params(study)  # before writing anything: it fails on an empty study
    params.update(cfg.overrides)
    run_folder.prepare(cfg, params)  # a resume with other parameters is refused here
    summary = search.study_summary(study, seconds)
    search.print_study_summary(summary, params)
    write_json(cfg.run_dir / "best_params.json", params)
    write_json(cfg.run_dir / "study.json", summary)
    from src.study_plots import save_study_plots

    for name, result in save_study_plots(study, cfg.run_dir).items():
        print(f"  plot {name}: {result}")
    print(f"live view: optuna-dashboard {mask_password(cfg.storage_url)}")
    return params, f"best trial #{summary['best_trial']} of study {study.study_name!r}{changed}"


def timed_search(cfg: Config, data):
    """Run the search (its SQLite home created first); the study and the seconds it took."""
    from src import search

    cfg.runs_dir.mkdir(parents=True, exist_ok=True)  # home of the default SQLite storage
    start = time.perf_counter()
    study = search.run_search(cfg, data)
    return study, time.perf_counter() - start


def search_worker(cfg: Config, data) -> None:
    """--search-only: run trials of the (shared) study, then say how to train from it."""
    from src import search
    from src.storage import mask_password

    study, seconds = timed_search(cfg, data)
    summary = search.study_summary(study, seconds)
    search.print_study_summary(summary, search.best_params(study) if summary["complete"] else None)
    flags = f"--data-dir {show(cfg.data_dir)} --trials 0 --study-name {cfg.study}"
    if cfg.storage:
        flags += f" --storage {mask_password(cfg.storage)}"
    print(f"train the ensemble from the study's best trial: python run.py {flags}")


def run(cfg: Config, command: str = "") -> None:
    """Validate the data, train the folds, ensemble them, write and check the submission."""
    if cfg.report:
        review(cfg)
        return
    start = time.perf_counter()
    data = load_digits(cfg.data_dir)  # everything the user can get wrong fails here, first
    print(
        f"data: {len(data.y_train)} training images from {data.source},"
        f" {len(data.x_test)} test images",
        flush=True,
    )

    # TensorFlow loads only once the data are known to be good: bad input fails in a second.
    from src import cv
    from src.engine import make_engine, resolve_engine
    from src.train import configure_determinism, configure_device

    engine = resolve_engine(cfg.engine)
    precision, device = configure_device(cfg.precision, engine)
    cfg = replace(cfg, engine=engine, precision=precision)  # what the run folder records
    print(f"device: {device}", flush=True)
    configure_determinism(cfg.deterministic)
    if cfg.search_only:
        search_worker(cfg, data)
        return
    params, origin = choose_params(cfg, data)
    print(
        f"run: {cfg.run_name}  model: {cfg.model}  augment: {cfg.augment}"
        f"  folds: {cfg.folds}  epochs: {cfg.epochs}  params: {origin}",
        flush=True,
    )
    trainer = make_engine(engine, params, data, epochs=cfg.epochs, patience=cfg.patience,
                          augment=cfg.augment)  # fmt: skip
    results, full_fits = cv.train_models(cfg, data, trainer)
    finish(cfg, data, results, full_fits, command, start, trainer.summary())


def finish(cfg: Config, data, results, full_fits, command: str, start: float,
           engine: dict) -> None:  # fmt: skip
    """Ensemble the folds; check and write the submission; summary, report, maybe submit."""
    from src import cv, report
    from src.ensemble import accuracy, average_predictions, save_ensemble
    from src.kaggle_submit import submit
    from src.report_page import build_report
    from src.submission import (
        check_submission,
        compare_with_previous,
        make_submission,
        submit_command,
        write_submission,
    )

    oof = cv.out_of_fold(results, len(data.y_train)) if results else None  # None: --folds 0
    test_proba = average_predictions([m.test_proba for m in full_fits or results])
    save_ensemble(cfg.run_dir / "ensemble.npz", oof, test_proba, data.x_train, data.y_train)
    sub = make_submission(test_proba.argmax(axis=1))
    check_submission(sub, len(data.x_test), data.sample_ids)
    path = cfg.submissions_dir / "submission.csv"
    diff = compare_with_previous(sub, path)  # before it is replaced
    write_submission(sub, path, copies=[cfg.submissions_dir / f"{cfg.run_name}.csv"])

    test_acc = None if data.test_labels is None else accuracy(data.test_labels, test_proba)
    oof_acc = None if oof is None else accuracy(data.y_train, oof)
    summary = report.summarize(results, oof_acc, test_acc, time.perf_counter() - start, full_fits)
    summary.update(command=command, submission=show(path), previous_diff=diff, engine=engine,
                   precision=cfg.precision)  # fmt: skip
    report.save_summary(summary, cfg.run_dir)
    report_start = time.perf_counter()
    page = build_report(cfg.run_dir)
    report_seconds = time.perf_counter() - report_start
    message = cfg.message or f"{cfg.run_name}: {report.headline(summary)}"
    report.print_summary(
        summary, path, cfg.run_dir, submit_command(show(path), message, cfg.competition)
    )
    print(f"report: {show(page)}  (built in {report_seconds:.1f} s)")
    if cfg.submit:
        submit(path, message, cfg.competition)


def review(cfg: Config) -> None:
    """--report RUN: rebuild the run's page; with --submit, check and submit its submission."""
    from src.report_page import build_report

    start = time.perf_counter()
    page = build_report(cfg.run_dir)
    print(f"report: {show(page)} (built in {time.perf_counter() - start:.1f} s)")
    if cfg.submit:
        submit_run(cfg)


def submit_run(cfg: Config) -> None:
    """Submit the run-named copy of a finished run's submission, checked again first."""
    import numpy as np
    import pandas as pd

    from src.files import read_json
    from src.kaggle_submit import submit
    from src.report import headline
    from src.submission import check_submission, compare_with_previous, describe_diff

    path = cfg.submissions_dir / f"{cfg.run_name}.csv"
    if not path.exists():
        raise UserError(f"{show(path)}: no such file; --report --submit sends a run's own copy")
    with np.load(cfg.run_dir / "ensemble.npz") as z:
        n_test = len(z["test_proba"])
    try:
        sub = pd.read_csv(path)
        check_submission(sub, n_test, None)
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{show(path)}: not a valid submission ({e}); rerun the run") from None
    latest = cfg.submissions_dir / "submission.csv"
    print(f"submission check: {describe_diff(compare_with_previous(sub, latest))}")
    summary = read_json(cfg.run_dir / "summary.json")
    submit(path, cfg.message or f"{cfg.run_name}: {headline(summary)}", cfg.competition)


def command_line(argv: list[str]) -> str:
    """The command as typed, for the summary and the report, with any storage password masked."""
    from src.storage import mask_password

    masked = [mask_password(arg) if "://" in arg else arg for arg in argv]
    return shlex.join(["python", "run.py", *masked])


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on a user error (one line on stderr, no traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = parse_args(argv)
    try:
        run(cfg, command_line(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished folds and trials are kept; add --run-name {cfg.run_name}"
            " to the same command to continue",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
