"""The run's models: stratified k-fold models, then full-data models, trained by one engine.

The folds measure (out-of-fold accuracy, best epochs); the full fits then train the same
network on every training row, each with its own seed, and are what the submission averages
(the folds' models when there are none). Why full fits: benchmarks/README.md,
"Kaggle-size holdout". With pseudo-labels a second round of full-data models follows
(`src/train/pseudo.py`), trained the same way on more rows.

Every model is a `Job` (src/train/engine.py) handed to the run's engine in one list, folds
first; each finished model is saved to its own folder (src/outputs/run_folder.py) as soon as it
is final, and a rerun with the same run name skips the models already saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from src.config import Config
from src.data.load import Digits
from src.outputs import run_folder
from src.train.engine import Job, Trained, checkpoint_jobs
from src.train.ensemble import accuracy
from src.train.pseudo import pseudo_jobs

FULL_FIT_SEED = 1000  # full fit i trains with seed + 1000 + i, apart from the folds' seed + k
FOLD_META = ("accuracy", "epochs", "best_epoch", "seconds")  # fold.json
FIT_META = ("epochs", "seconds")  # fit.json


@dataclass
class FoldResult:
    fold: int  # 0-based
    val_idx: np.ndarray  # rows of train.csv this fold validated
    val_proba: np.ndarray  # out-of-fold probabilities for those rows
    test_proba: np.ndarray  # probabilities for every test.csv row
    accuracy: float  # on the fold's validation part
    epochs: int  # epochs actually trained (early stopping may end sooner)
    best_epoch: int  # 1-based epoch whose weights were kept
    seconds: float  # wall time of fit + predict (batched: its share of the program's)
    resumed: bool = False  # loaded from an earlier run instead of trained now


@dataclass
class FullFit:
    index: int  # 0-based
    test_proba: np.ndarray  # probabilities for every test.csv row
    epochs: int
    seconds: float
    resumed: bool = False


def make_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) of each row: shuffled, stratified by label, seeded."""
    folds = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[val] = fold
    return folds


def fold_jobs(labels: np.ndarray, k: int, seed: int, first: int | None = None) -> list[Job]:
    """The fold models of a k-fold split (the first `first` of them): fold k trains on the other
    folds, validates on its own, with seed + k."""
    folds = make_folds(labels, k, seed)
    return [
        Job("fold", f + 1, np.flatnonzero(folds != f), np.flatnonzero(folds == f), seed + f)
        for f in range(k if first is None else min(first, k))
    ]


def full_fit_jobs(n_rows: int, n: int, seed: int) -> list[Job]:
    """N models on every training row, nothing held out."""
    rows = np.arange(n_rows)
    return [Job("full", i + 1, rows, None, seed + FULL_FIT_SEED + i) for i in range(n)]


def _label(job: Job, cfg: Config) -> str:
    of = {"fold": ("fold", cfg.folds), "full": ("full fit", cfg.full_fits),
          "pseudo": ("pseudo-label fit", cfg.pseudo_fits)}[job.kind]  # fmt: skip
    return f"{of[0]} {job.number}/{of[1]}"


def _load(cfg: Config, job: Job) -> FoldResult | FullFit | None:
    fold = job.kind == "fold"
    found = run_folder.load_model_files(
        cfg.run_dir / job.name,
        "fold.json" if fold else "fit.json",
        ("val_idx", "val_proba", "test_proba") if fold else ("test_proba",),
        FOLD_META if fold else FIT_META,
    )
    if found is None:
        return None
    arrays, meta = found
    if fold:
        return FoldResult(fold=job.number - 1, resumed=True, **arrays, **meta)
    return FullFit(index=job.number - 1, resumed=True, test_proba=arrays["test_proba"], **meta)


def _save(cfg: Config, trained: Trained, data: Digits) -> FoldResult | FullFit:
    """Turn an engine's result into the run's record and save its folder."""
    job = trained.job
    out = cfg.run_dir / job.name
    if job.kind == "fold":
        result = FoldResult(
            fold=job.number - 1,
            val_idx=job.val_rows,
            val_proba=trained.val_proba,
            test_proba=trained.test_proba,
            accuracy=accuracy(data.y_train[job.val_rows], trained.val_proba),
            epochs=trained.epochs,
            best_epoch=trained.best_epoch,
            seconds=trained.seconds,
        )
        meta = {k: getattr(result, k) for k in FOLD_META}
        arrays = {k: getattr(result, k) for k in ("val_idx", "val_proba", "test_proba")}
        run_folder.save_model(out, trained.model, trained.history, "fold.json", meta, arrays)
    else:
        result = FullFit(index=job.number - 1, test_proba=trained.test_proba,
                         epochs=trained.epochs, seconds=trained.seconds)  # fmt: skip
        meta = {k: getattr(result, k) for k in FIT_META}
        run_folder.save_model(out, trained.model, trained.history, "fit.json", meta,
                              {"test_proba": result.test_proba})  # fmt: skip
    return result


class TimeLeft:
    """The run's expected time left, said once after the first epoch of the models that started
    together (one model with the sequential engine, all of them with the batched one, which
    may resume mid-run from its checkpoint).

    The pace is that epoch's seconds per training row; the models still to come train their
    rows for every epoch, and so do `later_rows` (a later round's, at most). Early stopping may
    end folds sooner, and a first epoch that compiles is slower than the rest, so the figure is
    an upper bound.
    """

    def __init__(self, jobs: list[Job], epochs: int, later_rows: int = 0):
        self.waiting = {job.name: len(job.train_rows) for job in jobs}
        self.waiting["later rounds"] = later_rows
        self.epochs = epochs
        self.group: list[int] = []  # training rows of the models started since the last line
        self.since = time.perf_counter()

    def start(self, job: Job) -> None:
        if not self.group:
            self.since = time.perf_counter()
        self.group.append(self.waiting.pop(job.name))

    def epoch(self, index: int, epoch: int, logs: dict) -> None:
        if not self.group:
            return
        pace = (time.perf_counter() - self.since) / sum(self.group)
        rows = (
            sum(self.group) * (self.epochs - epoch - 1) + sum(self.waiting.values()) * self.epochs
        )
        self.group = []
        print(f"── time left: at most {_duration(pace * rows)} (at the first epoch's pace)",
              flush=True)  # fmt: skip


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def train_models(cfg: Config, data: Digits, engine,
                 later_rows: int = 0) -> tuple[list[FoldResult], list[FullFit]]:  # fmt: skip
    """Train (or resume) every fold model and full fit of the run with `engine`; `later_rows`:
    what a second round will train on, for the time-left line."""
    jobs = []
    if cfg.folds:
        jobs += fold_jobs(data.y_train, cfg.folds, cfg.seed)
    jobs += full_fit_jobs(len(data.y_train), cfg.full_fits, cfg.seed)
    ordered = train_jobs(cfg, data, engine, jobs, later_rows)
    folds = [r for r in ordered if isinstance(r, FoldResult)]
    return folds, [r for r in ordered if isinstance(r, FullFit)]


def train_pseudo_fits(cfg: Config, data: Digits, engine) -> list[FullFit]:
    """Train (or resume) the second round's models on `data`, the training rows extended with
    pseudo-labelled test digits (`src/train/pseudo.py`)."""
    jobs = pseudo_jobs(len(data.y_train), cfg.pseudo_fits, cfg.seed)
    return train_jobs(cfg, data, engine, jobs)


def train_jobs(cfg: Config, data: Digits, engine, jobs: list[Job],
               later_rows: int = 0) -> list[FoldResult | FullFit]:  # fmt: skip
    """Train (or resume) `jobs` with `engine`; their results in the jobs' order.

    Prints a line per model when it starts and when it is done (or was done by an earlier run).
    """
    checkpoint = run_folder.checkpoint(cfg)
    in_checkpoint = checkpoint_jobs(checkpoint) or []
    results: dict[str, FoldResult | FullFit] = {}
    for job in jobs:
        found = None if job.name in in_checkpoint else _load(cfg, job)
        if found is not None:
            results[job.name] = found
            fold = isinstance(found, FoldResult)
            score = f" (val accuracy {found.accuracy:.4f})" if fold else ""
            print(f"── {_label(job, cfg)}: finished in an earlier run, skipped{score}", flush=True)
    pending = [job for job in jobs if job.name not in results]

    time_left = TimeLeft(pending, cfg.epochs, later_rows)

    def start(job: Job) -> None:
        time_left.start(job)
        n = len(job.train_rows)
        if job.val_rows is None:
            what = f"train on all {n} rows, {cfg.epochs} epochs"
        else:
            what = f"train on {n}, validate on {len(job.val_rows)}"
        print(f"── {_label(job, cfg)}: {what} ──", flush=True)

    def done(trained: Trained) -> None:
        result = _save(cfg, trained, data)
        results[trained.job.name] = result
        if isinstance(result, FoldResult):
            print(f"── {_label(trained.job, cfg)}: val accuracy {result.accuracy:.4f}, best epoch"
                  f" {result.best_epoch}/{result.epochs}, {result.seconds:.0f} s",
                  flush=True)  # fmt: skip
        else:
            print(f"── {_label(trained.job, cfg)}: {result.seconds:.0f} s", flush=True)

    if pending:
        print(f"engine: {engine.describe(pending)}", flush=True)
        engine.train(pending, done, on_epoch=time_left.epoch, checkpoint=checkpoint,
                     on_start=start)  # fmt: skip
    return [results[job.name] for job in jobs]


def out_of_fold(results: list[FoldResult], n_rows: int) -> np.ndarray:
    """Assemble every fold's validation probabilities into one (n_rows, 10) matrix."""
    oof = np.full((n_rows, results[0].val_proba.shape[1]), np.nan, dtype=np.float32)
    for r in results:
        oof[r.val_idx] = r.val_proba
    if np.isnan(oof).any():
        raise ValueError("some training rows were validated by no fold")
    return oof
