"""Digit Recognizer end to end: validate the CSVs, train a k-fold CNN ensemble, write a submission.

    python run.py --folds 5                              # Kaggle's data in input/
    python run.py --data-dir input/sample --folds 5      # the bundled real sample

Reads train.csv and test.csv, trains one model per stratified fold with augmentation, averages
the fold models' probabilities on test.csv and writes submissions/submission.csv. Artifacts of a
run (models, histories, predictions) go to runs/<run-name>/; the same --run-name resumes a run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from src.config import AUGMENT_BACKENDS, Config
from src.data import load_digits, show
from src.errors import UserError
from src.params import DEFAULTS

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
        type=_at_least(2),
        default=d.folds,
        help=f"stratified folds = models in the ensemble (default {d.folds})",
    )
    p.add_argument(
        "--epochs",
        type=_at_least(1),
        default=d.epochs,
        help=f"maximum epochs per fold (default {d.epochs})",
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
        default=d.trials,
        help=f"Optuna search first, until the study holds this many finished trials in total"
        f" (default {d.trials}); 0 = no search: the model's defaults, or --study-name's best",
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
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--run-name",
        default="",
        help="run folder under runs/; reuse a name to resume that run"
        " (default: model and time stamp)",
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
    if a.trials and a.model != "cnn":
        p.error(f"--trials: the search space is for --model cnn; use --trials 0 with {a.model}")
    if a.timeout is not None and a.timeout <= 0:
        p.error(f"--timeout: must be positive, got {a.timeout:g}")
    name = a.run_name or f"{a.model}-{datetime.now():%Y%m%d-%H%M%S}"
    if Path(name).name != name or name.startswith("."):
        p.error(f"--run-name: {name!r} must be a plain folder name (no '/' or leading '.')")
    return Config(
        data_dir=a.data_dir.resolve(), folds=a.folds, epochs=a.epochs, patience=a.patience,
        trials=a.trials, search_epochs=a.search_epochs, search_folds=a.search_folds,
        timeout=a.timeout, study_name=a.study_name, storage=a.storage,
        model=a.model, augment=a.augment, seed=a.seed, run_name=name,
        deterministic=a.deterministic, runs_dir=a.runs_dir.resolve(),
        submissions_dir=a.submissions_dir.resolve(),
    )  # fmt: skip


def choose_params(cfg: Config, data) -> tuple[dict, str]:
    """Search, or read a study's best trial, or take the model's defaults; and say which.

    The run folder is checked against the chosen parameters before anything is written to it.
    """
    from src import search
    from src.cv import prepare_run_dir
    from src.files import write_json
    from src.params import default_params

    if not cfg.trials and not cfg.study_name:
        params = default_params(cfg.model)
        prepare_run_dir(cfg, params)
        return params, f"defaults of --model {cfg.model}"
    cfg.runs_dir.mkdir(parents=True, exist_ok=True)  # home of the default SQLite storage
    if cfg.trials:
        start = time.perf_counter()
        study = search.run_search(cfg, data)
        seconds = time.perf_counter() - start
    else:
        study, seconds = search.open_study(cfg, create=False), 0.0
    params = search.best_params(study)  # before writing anything: it fails on an empty study
    prepare_run_dir(cfg, params)  # a resume with other parameters is refused here
    summary = search.study_summary(study, seconds)
    search.print_study_summary(summary, params)
    write_json(cfg.run_dir / "best_params.json", params)
    write_json(cfg.run_dir / "study.json", summary)
    if cfg.trials:
        from src.study_plots import save_study_plots

        for name, result in save_study_plots(study, cfg.run_dir).items():
            print(f"  plot {name}: {result}")
        print(f"live view: optuna-dashboard {search.mask_password(cfg.storage_url)}")
    return params, f"best trial #{summary['best_trial']} of study {study.study_name!r}"


def run(cfg: Config) -> None:
    """Validate the data, train the folds, ensemble them, write and check the submission."""
    start = time.perf_counter()
    data = load_digits(cfg.data_dir)  # everything the user can get wrong fails here, first
    print(
        f"data: {len(data.y_train)} training images from {data.source},"
        f" {len(data.x_test)} test images",
        flush=True,
    )

    # TensorFlow loads only once the data are known to be good: bad input fails in a second.
    import numpy as np

    from src import cv, report
    from src.ensemble import accuracy, average_predictions
    from src.files import atomic_path
    from src.submission import check_submission, make_submission, submit_command, write_submission
    from src.train import configure_determinism

    configure_determinism(cfg.deterministic)
    params, origin = choose_params(cfg, data)
    print(
        f"run: {cfg.run_name}  model: {cfg.model}  augment: {cfg.augment}"
        f"  folds: {cfg.folds}  epochs: {cfg.epochs}  params: {origin}",
        flush=True,
    )
    results = cv.run_cv(cfg, params, data)

    oof = cv.out_of_fold(results, len(data.y_train))
    test_proba = average_predictions([r.test_proba for r in results])
    with atomic_path(cfg.run_dir / "ensemble.npz") as tmp:
        np.savez(tmp, oof_proba=oof, test_proba=test_proba)
    sub = make_submission(test_proba.argmax(axis=1))
    check_submission(sub, len(data.x_test), data.sample_ids)
    path = cfg.submissions_dir / "submission.csv"
    write_submission(sub, path, copies=[cfg.submissions_dir / f"{cfg.run_name}.csv"])

    test_acc = None if data.test_labels is None else accuracy(data.test_labels, test_proba)
    summary = report.summarize(
        results, accuracy(data.y_train, oof), test_acc, time.perf_counter() - start
    )
    report.save_summary(summary, cfg.run_dir)
    message = f"{cfg.run_name}: {cfg.folds}-fold {cfg.model}, OOF {summary['oof_accuracy']:.4f}"
    report.print_summary(summary, path, cfg.run_dir, submit_command(show(path), message))


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on a user error (one line on stderr, no traceback)."""
    cfg = parse_args(argv)
    try:
        run(cfg)
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
