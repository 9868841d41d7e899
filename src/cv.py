"""Stratified k-fold training, then full-data models: out-of-fold predictions, resumable runs.

The folds measure (out-of-fold accuracy, best epochs); the full fits then train the same
network on every training row, each with its own seed, and are what the submission averages
(the folds' models when there are none). On the sample, one model trained on all 8,000 rows
scored 0.9920-0.9935 on the held-out digits where a fold model, on 6,400, scored 0.9895-0.9925.

Each fold's artifacts live in `runs/<run>/fold_<k>/`, each full fit's in `runs/<run>/full_<i>/`.
`predictions.npz` is written last, after the model, so its presence means the model is
complete: a rerun with the same run name skips it.
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


@dataclass
class FullFit:
    index: int  # 0-based
    test_proba: np.ndarray  # probabilities for every test.csv row
    epochs: int
    seconds: float
    resumed: bool = False


FULL_FIT_SEED = 1000  # full fit i trains with seed + 1000 + i, apart from the folds' seed + k


def _fold_dir(cfg: Config, fold: int) -> Path:
    return cfg.run_dir / f"fold_{fold + 1}"


def _full_dir(cfg: Config, index: int) -> Path:
    return cfg.run_dir / f"full_{index + 1}"


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
    meta = {k: getattr(result, k) for k in ("accuracy", "epochs", "best_epoch", "seconds")}
    arrays = {k: getattr(result, k) for k in ("val_idx", "val_proba", "test_proba")}
    _save_model(_fold_dir(cfg, result.fold), model, history, "fold.json", meta, arrays)


def _save_model(out: Path, model, history, meta_name: str, meta: dict, arrays: dict) -> None:
    """Model, history and metadata first; predictions.npz last, as the completion marker."""
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp)
    history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    write_json(out / "history.json", history_)
    write_json(out / meta_name, meta)
    with atomic_path(out / "predictions.npz") as tmp:
        np.savez(tmp, **arrays)


def run_cv(cfg: Config, params: dict, data: Digits) -> list[FoldResult]:
    """Train (or resume) every fold, printing a header per fold and its score after."""
    if not cfg.folds:  # --folds 0: only full fits
        return []
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


def train_full_fit(cfg: Config, params: dict, data: Digits, index: int) -> FullFit:
    """Fit one model on every training row for --epochs epochs; predict test.csv; save it.

    No rows are held out, so nothing stops it early: it trains the epochs the folds trained,
    down the same learning-rate schedule.
    """
    keras.backend.clear_session()
    seed = cfg.seed + FULL_FIT_SEED + index
    keras.utils.set_random_seed(seed)
    model = build_model(params)
    start = time.perf_counter()
    history = fit_model(model, params, (data.x_train, data.y_train), None, epochs=cfg.epochs,
                        patience=cfg.patience, augment=cfg.augment, seed=seed)  # fmt: skip
    result = FullFit(index=index, test_proba=predict_proba(model, data.x_test),
                     epochs=len(history.history["loss"]),
                     seconds=time.perf_counter() - start)  # fmt: skip
    meta = {"epochs": result.epochs, "seconds": result.seconds}
    arrays = {"test_proba": result.test_proba}
    _save_model(_full_dir(cfg, index), model, history, "fit.json", meta, arrays)
    return result


def load_full_fit(cfg: Config, index: int) -> FullFit | None:
    path = _full_dir(cfg, index) / "predictions.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        test_proba = z["test_proba"]
    meta = read_json(_full_dir(cfg, index) / "fit.json")
    return FullFit(index=index, test_proba=test_proba, resumed=True, **meta)


def run_full_fits(cfg: Config, params: dict, data: Digits) -> list[FullFit]:
    """Train (or resume) --full-fits models on all training rows, with progress like the folds."""
    fits = []
    for index in range(cfg.full_fits):
        head = f"full fit {index + 1}/{cfg.full_fits}"
        fit = load_full_fit(cfg, index)
        if fit is not None:
            print(f"── {head}: finished in an earlier run, skipped", flush=True)
        else:
            print(f"── {head}: train on all {len(data.y_train)} rows, {cfg.epochs} epochs ──",
                  flush=True)  # fmt: skip
            fit = train_full_fit(cfg, params, data, index)
            print(f"── {head}: {fit.seconds:.0f} s", flush=True)
        fits.append(fit)
    return fits
