"""Training recipes ranked by cross-validation over every digit the repository has.

    python -m benchmarks.cross_validation [--folds 5] [--repeats 1] [--seed 0] [--rows N] \
        [--no-classic] [NAME="RUN.PY FLAGS" ...]

The bundled sample's 8,000 training digits and its 2,000 answer-keyed test digits, 10,000 in
all, are split by (repeated) stratified k-fold. On each split every recipe trains on the other
folds and is scored on each digit of the fold it never saw, so each repetition scores it on all
10,000 digits: five times as many as the sample's answer key, so √5 less binomial noise. All
recipes see the same splits, one after another in one process, and each recipe's wall time per
split (training and predicting, no start-up) is kept.

Recipes:
- `classic`: the most copied public notebook, as published (benchmarks/classic.py); it holds
  back 10 % of its training rows for its plateau schedule, as the notebook does.
- `NAME="FLAGS"`: what `python run.py --trials 0 FLAGS` trains, on the split's training rows
  (`--folds`, `--full-fits`, `--epochs`, `--model`, `--set`, `--augment`, `--precision`,
  `--engine`; the split moves `--seed`), predicting as its submission does. Without any: the
  README's quick submission (`quick`) and one model of the default recipe, trained on every
  row for all 30 epochs as the default run's full fits are (`default`).

Prints a line per split and recipe, a table, and `RESULT name_acc=... name_s=... name_ratio=...`
(the ratio: the recipe's mean time per split over the classic one's). Tables: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "input" / "sample"
QUICK = "--folds 0 --full-fits 1 --epochs 18"  # the README's quick submission
DEFAULT_RECIPES = {"quick": QUICK, "default": "--folds 0 --full-fits 1 --epochs 30"}


def all_digits(rows: int | None, seed: int):
    """The sample's training and answer-keyed test digits as one labelled set (a stratified
    subset of `rows` of them if asked)."""
    from dataclasses import replace

    from sklearn.model_selection import train_test_split

    from src.data.load import load_digits

    data = load_digits(SAMPLE)
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.test_labels])
    if rows and rows < len(y):
        x, _, y, _ = train_test_split(x, y, train_size=rows, stratify=y, random_state=seed)
    empty = x[:0]
    return replace(data, x_train=x, y_train=y, x_test=empty, test_labels=None)


def project_recipe(flags: str, params: dict | None = None):
    """run.py's training flags -> a function (data, rows, held_out, seed) -> probabilities for
    the `held_out` rows.

    The models are the ones `run.py FLAGS` trains on `rows`: its folds (each validated on its
    own part of `rows`) and full fits, with the run's seed moved by the split's; each predicts
    the held-out rows as it finishes, as it would predict test.csv, and the prediction averages
    the full fits, or the folds' models when there are none, as the submission does.
    `params`: hyperparameters to train with instead of the model's defaults (a study's trial).
    """
    from dataclasses import replace

    from src.cli import parse_args
    from src.params import default_params
    from src.train.device import configure_device
    from src.train.engine import Job
    from src.train.engines import make_engine
    from src.train.ensemble import average_predictions
    from src.train.folds import fold_jobs, full_fit_jobs

    cfg = parse_args(["--data-dir", str(SAMPLE), "--trials", "0", *shlex.split(flags)])
    params = {**(params or default_params(cfg.model)), **dict(cfg.overrides)}

    def fit(data, rows: np.ndarray, held_out: np.ndarray, seed: int) -> np.ndarray:
        configure_device(cfg.precision)
        seed += cfg.seed
        jobs = fold_jobs(data.y_train[rows], cfg.folds, seed) if cfg.folds else []
        jobs += full_fit_jobs(len(rows), cfg.full_fits, seed)
        jobs = [Job(j.kind, j.number, rows[j.train_rows],
                    None if j.val_rows is None else rows[j.val_rows], j.seed)
                for j in jobs]  # fmt: skip
        split = replace(data, x_test=data.x_train[held_out])  # "test.csv": the unseen rows
        engine = make_engine(cfg.engine, params, split, epochs=cfg.epochs, patience=cfg.patience,
                             augment=cfg.augment, verbose=0)  # fmt: skip
        probas = {}
        engine.train(jobs, lambda trained: probas.update({trained.job.name: trained.test_proba}))
        full = [p for name, p in probas.items() if name.startswith("full")]
        return average_predictions(full or list(probas.values()))

    return fit


def classic_recipe(data, rows: np.ndarray, held_out: np.ndarray, seed: int) -> np.ndarray:
    """The classic notebook trained on `rows`; its probabilities for the `held_out` rows."""
    from benchmarks.classic import fit_classic
    from src.train.device import configure_device
    from src.train.ensemble import predict_proba

    configure_device("float32")  # as published
    model = fit_classic(data.x_train[rows], data.y_train[rows], seed, verbose=0)
    return predict_proba(model, data.x_train[held_out])


def cross_validate(data, recipes: dict, folds: int, repeats: int, seed: int):
    """Every recipe on the same repeated stratified splits of `data`'s digits, printing a line
    per split; ({name: accuracy over every held-out digit}, {name: [seconds per split]})."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    correct = {name: 0 for name in recipes}
    seconds = {name: [] for name in recipes}
    splits = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    print(f"{len(data.y_train)} digits, {folds} folds x {repeats} repeats,"
          f" recipes: {', '.join(recipes)}", flush=True)  # fmt: skip
    for split, (train_rows, held_out) in enumerate(splits.split(data.x_train, data.y_train)):
        for name, fit in recipes.items():
            start = time.perf_counter()
            proba = fit(data, train_rows, held_out, seed + split)
            seconds[name].append(time.perf_counter() - start)
            right = int(np.sum(proba.argmax(axis=1) == data.y_train[held_out]))
            correct[name] += right
            print(f"split {split + 1}/{folds * repeats} {name}:"
                  f" {right / len(held_out):.4f} on {len(held_out)} unseen digits,"
                  f" {seconds[name][-1]:.0f} s", flush=True)  # fmt: skip
    scored = len(data.y_train) * repeats
    return {name: right / scored for name, right in correct.items()}, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", help='NAME="RUN.PY FLAGS" (see the module docstring)')
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1, help="k-fold splits, each newly shuffled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, default=None, help="a stratified subset (smoke runs)")
    p.add_argument("--no-classic", action="store_true", help="leave the classic recipe out")
    a = p.parse_args()
    named = dict(text.split("=", 1) for text in a.recipes) if a.recipes else DEFAULT_RECIPES
    print(f"command: python -m benchmarks.cross_validation --folds {a.folds} --repeats"
          f" {a.repeats} --seed {a.seed}" + (f" --rows {a.rows}" if a.rows else "")
          + ("".join(f" {k}={shlex.quote(v)}" for k, v in named.items()) if a.recipes else ""),
          flush=True)  # fmt: skip

    from src.train.quiet import import_keras

    import_keras()
    data = all_digits(a.rows, a.seed)
    recipes = {} if a.no_classic else {"classic": classic_recipe}
    recipes |= {name: project_recipe(flags) for name, flags in named.items()}
    accuracy, seconds = cross_validate(data, recipes, a.folds, a.repeats, a.seed)
    scored = len(data.y_train) * a.repeats
    base = np.mean(seconds["classic"]) if "classic" in seconds else None
    print(f"\n| recipe | accuracy on {scored:,} unseen digits | s per split | time ratio |")
    print("| --- | --- | --- | --- |")
    result = "RESULT"
    for name in recipes:
        acc, mean_s = accuracy[name], float(np.mean(seconds[name]))
        ratio = f"{mean_s / base:.2f}" if base else "-"
        flags = named.get(name)
        label = f"`{name}` ({flags})" if flags else f"`{name}`"
        print(f"| {label} | {acc:.4f} | {mean_s:.0f} | {ratio} |")
        result += f" {name}_acc={acc:.4f} {name}_s={mean_s:.0f} {name}_ratio={ratio}"
    print(result)


if __name__ == "__main__":
    main()
