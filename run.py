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

import argparse
import os
import shlex
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from src.config import AUGMENT_BACKENDS, ENGINES, PRECISIONS, Config
from src.data import load_digits, show
from src.errors import UserError
from src.params import DEFAULTS, parse_override

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # what argparse calls the type in its messages
    return parse


def parse_args(argv: list[str] | None = None) -> Config:
    """Command line -> Config. Bad flags exit with code 2 and one line (argparse's own)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = Config()
    p.add_argument(
        "--data-dir",
        type=Path,
        default=d.data_dir,
        help="folder with train.csv and test.csv (.csv, .csv.gz or"
        " digit-recognizer.zip); default: input/",
    )
    p.add_argument(
        "--folds",
        type=_at_least(0),
        default=d.folds,
        help=f"stratified folds: K models, each validated on its own 1/K of train.csv"
        f" (default {d.folds}); 0 = no folds, only the --full-fits models: the fastest"
        f" submission, with no out-of-fold estimate",
    )
    p.add_argument(
        "--epochs",
        type=_at_least(1),
        default=d.epochs,
        help=f"maximum epochs per fold (default {d.epochs})",
    )
    p.add_argument(
        "--full-fits",
        type=_at_least(0),
        default=d.full_fits,
        help=f"after the folds, train N models on every training row (--epochs each, own"
        f" seeds); the submission averages them instead of the fold models (default"
        f" {d.full_fits})",
    )
    p.add_argument(
        "--patience",
        type=_at_least(1),
        default=d.patience,
        help=f"early-stopping patience in epochs (default {d.patience})",
    )
    p.add_argument(
        "--trials",
        type=_at_least(0),
        default=None,
        help=f"Optuna search first, until the study holds this many finished trials in total"
        f" (default {d.trials}); 0 = no search: the model's defaults, or --study-name's best",
    )
    p.add_argument(
        "--max-trials",
        type=_at_least(1),
        default=None,
        help="hard cap on the study's finished trials over all workers sharing it (Optuna's"
        " MaxTrialsCallback); alone, also the target that --trials sets (default: --trials)",
    )
    p.add_argument(
        "--n-jobs",
        type=_at_least(1),
        default=d.n_jobs,
        help=f"trials run at a time by this process, each in its own process (default"
        f" {d.n_jobs}; 2 on a 2-core CPU measured 1.09x as fast, see benchmarks/)",
    )
    p.add_argument(
        "--search-only",
        action="store_true",
        help="be one search worker of a shared study: search, print the study summary, train"
        " nothing (then: --trials 0 --study-name NAME --storage URL trains the ensemble)",
    )
    p.add_argument(
        "--search-epochs",
        type=_at_least(1),
        default=d.search_epochs,
        help=f"epochs per search trial (default {d.search_epochs})",
    )
    p.add_argument(
        "--search-folds",
        type=_at_least(1),
        default=d.search_folds,
        help=f"folds each search trial trains and validates (default {d.search_folds})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds after which the search starts no new trial (default: none)",
    )
    p.add_argument(
        "--study-name",
        default="",
        help="Optuna study to search or, with --trials 0, to train from (default: MODEL-search)",
    )
    p.add_argument(
        "--storage",
        default="",
        help="Optuna storage URL, e.g. sqlite:///runs/optuna.db or postgresql://user@host/db"
        " (default: runs/optuna.db)",
    )
    p.add_argument(
        "--model",
        choices=sorted(DEFAULTS),
        default=d.model,
        help=f"architecture (default {d.model}; 'seed' = the original 4-layer CNN)",
    )
    p.add_argument(
        "--augment",
        choices=AUGMENT_BACKENDS,
        default=d.augment,
        help="augmentation backend: one-pass affine warp in tf.data, Keras preprocessing"
        f" layers in tf.data, Keras's ImageDataGenerator, or none (default {d.augment})",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=d.engine,
        help="how the run's models train: one model.fit after another (sequential), or all"
        " together as one compiled JAX program (batched: Keras on JAX); auto: batched when"
        " JAX has a GPU, else sequential",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="Keras dtype policy; auto: what measured fastest on this device (the run's first"
        " lines say which and why)",
    )
    p.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one hyperparameter of the trained models (repeatable), on top of the"
        " defaults or the study's best, e.g. --set elastic_alpha=34 --set filters=48",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--run-name",
        default="",
        help="run folder under runs/; reuse a name to resume that run"
        " (default: model and time stamp)",
    )
    p.add_argument(
        "--report",
        metavar="RUN_NAME",
        default="",
        help="rebuild runs/RUN_NAME/report.html from the run's saved files, no training"
        " (with --submit: then submit that run's submission)",
    )
    p.add_argument(
        "--submit",
        action="store_true",
        help="submit the checked submission with the kaggle CLI"
        " (pip install -r requirements-kaggle.txt)",
    )
    p.add_argument(
        "-m",
        "--message",
        default="",
        help="submission message (default: run name, folds and OOF accuracy)",
    )
    p.add_argument(
        "--competition",
        default=d.competition,
        help=f"Kaggle competition to submit to (default {d.competition})",
    )
    p.add_argument(
        "--runs-dir", type=Path, default=d.runs_dir, help="where run folders go (default: runs/)"
    )
    p.add_argument(
        "--submissions-dir",
        type=Path,
        default=d.submissions_dir,
        help="where submission.csv goes (default: submissions/)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic ops: same seed and flags give a byte-identical submission",
    )
    a = p.parse_args(argv)
    if a.trials is None:
        a.trials = a.max_trials or d.trials
    if a.folds == 1:
        p.error("--folds: one fold validates on every row it trained on; give 0 or K >= 2")
    if not a.folds and not a.full_fits:
        p.error("--folds 0 --full-fits 0 trains no model; give --full-fits N (N >= 1)")
    if not a.folds and a.trials:
        p.error("--folds 0: the search validates its trials on folds; use --trials 0 (with"
                " --study-name NAME to train a finished study's best)")  # fmt: skip
    if a.search_only and not a.trials:
        p.error("--search-only: needs trials to run; give --trials N or --max-trials N")
    if a.trials and a.model != "cnn":
        p.error(f"--trials: the search space is for --model cnn; use --trials 0 with {a.model}")
    if a.timeout is not None and a.timeout <= 0:
        p.error(f"--timeout: must be positive, got {a.timeout:g}")
    if a.report and a.run_name and a.run_name != a.report:
        p.error("--report names the run itself; leave out --run-name")
    try:
        overrides = tuple(parse_override(text, a.model) for text in a.set)
    except ValueError as e:
        p.error(f"--set {e}")
    name = a.report or a.run_name or f"{a.model}-{datetime.now():%Y%m%d-%H%M%S}"
    if Path(name).name != name or name.startswith("."):
        flag = "--report" if a.report else "--run-name"
        p.error(f"{flag}: {name!r} must be a plain folder name (no '/' or leading '.')")
    return Config(
        data_dir=a.data_dir.resolve(), folds=a.folds, epochs=a.epochs, full_fits=a.full_fits,
        patience=a.patience,
        trials=a.trials, max_trials=a.max_trials, n_jobs=a.n_jobs, search_only=a.search_only,
        search_epochs=a.search_epochs, search_folds=a.search_folds,
        timeout=a.timeout, study_name=a.study_name, storage=a.storage,
        model=a.model, overrides=overrides, augment=a.augment, engine=a.engine,
        precision=a.precision, seed=a.seed, run_name=name,
        deterministic=a.deterministic, report=bool(a.report), submit=a.submit,
        message=a.message, competition=a.competition, runs_dir=a.runs_dir.resolve(),
        submissions_dir=a.submissions_dir.resolve(),
    )  # fmt: skip


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
