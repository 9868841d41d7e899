"""Stratified k-fold training: one model per fold, out-of-fold predictions, resumable runs.

Each fold's artifacts live in `runs/<run>/fold_<k>/`. `predictions.npz` is written last, after
the model, so its presence means the fold is complete: a rerun with the same run name skips it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import StratifiedKFold

from src.config import Config
from src.data import Digits, show
from src.ensemble import accuracy, predict_proba
from src.errors import UserError
from src.files import atomic_path, read_json, write_json
from src.model import build_model
from src.train import fit_model


@dataclass
class FoldResult:
    fold: int  # 0-based
    val_idx: np.ndarray  # rows of train.csv this fold validated
    val_proba: np.ndarray  # out-of-fold probabilities for those rows
    test_proba: np.ndarray  # probabilities for every test.csv row
    accuracy: float  # on the fold's validation part
    epochs: int  # epochs actually trained (early stopping may end sooner)
    best_epoch: int  # 1-based epoch whose weights were kept
    seconds: float  # wall time of fit + predict
    resumed: bool = False  # loaded from an earlier run instead of trained now


def make_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) of each row: shuffled, stratified by label, seeded."""
    folds = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, val) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[val] = fold
    return folds


def prepare_run_dir(cfg: Config, params: dict) -> None:
    """Create the run folder, or check that an existing one was trained the same way."""
    settings = {"settings": cfg.training_settings(), "params": params}
    path = cfg.run_dir / "config.json"
    if path.exists():
        previous = read_json(path)
        previous = {"settings": previous["settings"], "params": previous["params"]}
        if previous != settings:
            diff = [
                f"{key} {previous[part].get(key)!r} -> {value!r}"
                for part in settings
                for key, value in settings[part].items()
                if previous[part].get(key) != value
            ]
            raise UserError(
                f"{show(cfg.run_dir)} was trained with other settings ({', '.join(diff)});"
                " rerun with its original flags to resume it, or pick a new --run-name"
            )
        return
    write_json(path, settings)


def _fold_dir(cfg: Config, fold: int) -> Path:
    return cfg.run_dir / f"fold_{fold + 1}"


def load_fold(cfg: Config, fold: int) -> FoldResult | None:
    """A fold finished by an earlier run with this run name, if there is one."""
    path = _fold_dir(cfg, fold) / "predictions.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        arrays = {key: z[key] for key in z.files}
    meta = read_json(_fold_dir(cfg, fold) / "fold.json")
    return FoldResult(fold=fold, resumed=True, **arrays, **meta)


def train_fold(
    cfg: Config, params: dict, data: Digits, folds: np.ndarray, fold: int
) -> FoldResult:
    """Fit one model on the other folds, predict its own fold and test.csv, save everything."""
    keras.backend.clear_session()  # free the previous fold's graph and weights
    keras.utils.set_random_seed(cfg.seed + fold)  # per fold: a resumed fold trains identically
    train, val = folds != fold, folds == fold
    x_val, y_val = data.x_train[val].astype("float32"), data.y_train[val]
    model = build_model(params)
    start = time.perf_counter()
    history = fit_model(
        model,
        params,
        (data.x_train[train], data.y_train[train]),
        (x_val, y_val),
        epochs=cfg.epochs,
        patience=cfg.patience,
        augment=cfg.augment,
        seed=cfg.seed + fold,
    )
    val_proba = predict_proba(model, x_val)
    test_proba = predict_proba(model, data.x_test)
    losses = history.history["val_loss"]
    result = FoldResult(
        fold=fold,
        val_idx=np.flatnonzero(val),
        val_proba=val_proba,
        test_proba=test_proba,
        accuracy=accuracy(y_val, val_proba),
        epochs=len(losses),
        best_epoch=int(np.argmin(losses)) + 1,
        seconds=time.perf_counter() - start,
    )
    _save_fold(cfg, model, history, result)
    return result


def _save_fold(cfg: Config, model: keras.Model, history, result: FoldResult) -> None:
    """Model, history and metadata first; predictions.npz last, as the completion marker."""
    out = _fold_dir(cfg, result.fold)
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    write_json(out / "history.json", history_)
    meta = {k: getattr(result, k) for k in ("accuracy", "epochs", "best_epoch", "seconds")}
    write_json(out / "fold.json", meta)
    with atomic_path(out / "predictions.npz") as tmp:
        np.savez(
            tmp, val_idx=result.val_idx, val_proba=result.val_proba, test_proba=result.test_proba
        )


def run_cv(cfg: Config, params: dict, data: Digits) -> list[FoldResult]:
    """Train (or resume) every fold, printing a header per fold and its score after."""
    folds = make_folds(data.y_train, cfg.folds, cfg.seed)
    results = []
    for fold in range(cfg.folds):
        n_val = int((folds == fold).sum())
        head = f"fold {fold + 1}/{cfg.folds}"
        result = load_fold(cfg, fold)
        if result is not None:
            print(
                f"── {head}: finished in an earlier run, skipped"
                f" (val accuracy {result.accuracy:.4f})",
                flush=True,
            )
        else:
            print(f"── {head}: train on {len(folds) - n_val}, validate on {n_val} ──", flush=True)
            result = train_fold(cfg, params, data, folds, fold)
            print(
                f"── {head}: val accuracy {result.accuracy:.4f}, best epoch"
                f" {result.best_epoch}/{result.epochs}, {result.seconds:.0f} s",
                flush=True,
            )
        results.append(result)
    return results


def out_of_fold(results: list[FoldResult], n_rows: int) -> np.ndarray:
    """Assemble every fold's validation probabilities into one (n_rows, 10) matrix."""
    oof = np.full((n_rows, results[0].val_proba.shape[1]), np.nan, dtype=np.float32)
    for r in results:
        oof[r.val_idx] = r.val_proba
    if np.isnan(oof).any():
        raise ValueError("some training rows were validated by no fold")
    return oof
