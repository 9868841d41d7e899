"""Whole runs scored on a Kaggle-size holdout: recipes ranked on digits they never saw.

    python -m benchmarks.holdout --data-dir ../shared/data/kaggle [--splits 1] [--holdout 0.1] \
        [--seed 0] [--rows N] [--no-classic] [--with-test] [--out runs/holdout] \
        [--blend A+B ...] [NAME="RUN.PY FLAGS" ...]

The competition's train.csv is split, stratified and seeded, into a training part and a held-out
part (Deotte's protocol: 90/10). Each split is written out as a data folder of its own
(`train.csv`, an unlabelled `test.csv` of the held-out digits, `sample_submission.csv`), and
each recipe is a whole `python run.py --trials 0 FLAGS` on it, in a child process, exactly as a
user runs it (folds, full fits, a search if FLAGS ask for one, the ensemble, the submission).
Its submission is then scored on the held-out labels, which the run never sees. The classic
public notebook (benchmarks/classic.py) trains on the same training part in the same run.

`--with-test`: the run's test.csv also holds the competition's own 28,000 unlabelled test
digits after the held-out ones, as a Kaggle run's test.csv holds them; only the held-out digits
are scored. What a run does with its test digits (pseudo-labels) then sees as many as on Kaggle.

Besides the submission, the models a run leaves are re-combined from their saved test
probabilities: `folds` (the fold models' average), `full` (the full fits') and `all` (every
model), so what the submission should average is measured with no extra training. A run with
pseudo-labels is also scored by its first round (`first`: the models the submission would have
averaged without them), so the second round is compared with the first on the same digits.

`--blend A+B[+C...]` (repeatable): the submissions of recipes A, B, ... averaged (each run's
saved ensemble probabilities, equally weighted), scored as a recipe of its own whose time is
theirs together: two architectures in one ensemble against two copies of one, with no extra
training.

`--tta`: each run's submission models (its full fits, else its folds) also predict the held-out
digits in 8 fixed warps (rotation +-5 degrees, zoom +-5 %, shifts of +-1 pixel along x and y,
one at a time) besides as they are; `tta` is the accuracy of all 9 views averaged.

A recipe whose run folder already holds a finished run is scored again without training (its
recorded time is kept): add `--tta` to a finished benchmark at the cost of predicting. The
classic notebook's answers and time are recorded in the split's folder too, and re-scored so.
Stopped (Ctrl-C, or `kill`: the run.py it waits on stops with it), the same command goes on, and
run.py resumes the unfinished run from the models it finished (its wall time is then the
resumed part's alone).

The digits no recipe got right (every recipe, blend and the classic notebook wrong) are the floor
those recipes share: their count is printed and `never_right.png` in `--out` shows each, titled
with its train.csv row (from 0, below the header), its label, the recipes' commonest answer and the
share of recipes that gave it. A goal above that floor asks a recipe to get right digits none has.

Wall time per recipe is the child process's, start-up included. The noise: one standard error
of an accuracy p on n digits is sqrt(p(1-p)/n) (4,200 digits at 0.997: about 0.08 %); two
recipes on the same digits are compared by the digits only one of them gets right, and an exact
sign test on those says how likely so uneven a split is by chance (p).

Prints each run's own output, a line per split and recipe (with each model's mistakes alone
where a run leaves several), a table, the recipes compared pair by pair, and
`RESULT name_acc=... name_s=... [name_oof=...] [name_folds=... name_full=... name_all=...]
[name_first=...] [name_tta=...] never_right=...`.
Tables: benchmarks/README.md, "Kaggle-size holdout".
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from src.outputs.files import read_json, write_json

ROOT = Path(__file__).resolve().parent.parent
QUICK = "--folds 0 --full-fits 1 --epochs 18"  # the README's quick submission
DEFAULT_RECIPES = {"quick": QUICK}
TTA_VIEWS = {  # uniform draws in [-1, 1] for (angle, x zoom, y zoom, x shift, y shift)
    "rotate +5": [0.5, 0, 0, 0, 0], "rotate -5": [-0.5, 0, 0, 0, 0],
    "zoom +5%": [0, 0.5, 0.5, 0, 0], "zoom -5%": [0, -0.5, -0.5, 0, 0],
    "x +1 px": [0, 0, 0, 1, 0], "x -1 px": [0, 0, 0, -1, 0],
    "y +1 px": [0, 0, 0, 0, 1], "y -1 px": [0, 0, 0, 0, -1],
}  # fmt: skip
TTA_RANGES = {"rotation_range": 10, "zoom_range": 0.1, "width_shift_range": 1 / 28,
              "height_shift_range": 1 / 28}  # fmt: skip


def split_rows(y: np.ndarray, holdout: float, splits: int, seed: int):
    """[(training rows, held-out rows)] per split: stratified, seeded, disjoint within a split."""
    from sklearn.model_selection import StratifiedShuffleSplit

    s = StratifiedShuffleSplit(n_splits=splits, test_size=holdout, random_state=seed)
    return list(s.split(np.zeros(len(y)), y))


def write_split(data, train_rows: np.ndarray, held_out: np.ndarray, folder: Path,
                with_test: bool = False) -> None:  # fmt: skip
    """A data folder run.py reads: train.csv, an unlabelled test.csv (the held-out digits, then
    the competition's test digits if `with_test`), sample_submission.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = [f"pixel{i}" for i in range(28 * 28)]
    labels = data.layout.classes[data.y_train]
    if not (folder / "train.csv").exists():  # the same split is the same files: keep them
        train = pd.DataFrame(data.x_train[train_rows].reshape(len(train_rows), -1), columns=pixels)
        train.insert(0, "label", labels[train_rows])
        images = data.x_train[held_out]
        if with_test:
            images = np.concatenate([images, data.x_test])
        test = pd.DataFrame(images.reshape(len(images), -1), columns=pixels)
        ids = np.arange(1, len(images) + 1)
        pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(
            folder / "sample_submission.csv", index=False
        )
        test.to_csv(folder / "test.csv.tmp", index=False)
        train.to_csv(folder / "train.csv.tmp", index=False)
        (folder / "test.csv.tmp").rename(folder / "test.csv")
        (folder / "train.csv.tmp").rename(folder / "train.csv")  # last: marks the folder whole


def run_recipe(flags: str, folder: Path, name: str) -> tuple[float, Path]:
    """`python run.py --trials 0 FLAGS` on the split in `folder`; (seconds, its run folder).

    A run finished by an earlier benchmark with the same flags and the hyperparameters they
    give today is not trained again: its recorded seconds are returned. One whose flags give
    other hyperparameters today (a default changed since) ends the benchmark, naming what
    changed: run.py would refuse to resume it, and the recorded run is not deleted here. Other
    flags giving the same run (run.py resumes its models) keep the recorded seconds, plus those
    of any model trained now."""
    record = folder / "runs" / name / "holdout.json"
    earlier = 0.0  # the recorded seconds of the models run.py may resume
    if record.exists():
        done = read_json(record)
        earlier = done["seconds"]
        if done["flags"] == flags:
            changed = changed_params(flags, record.parent / "config.json")
            if not changed:
                print(f"{name}: finished earlier with these flags ({done['seconds']:.0f} s)")
                return done["seconds"], record.parent
            sys.exit(
                f"recipe {name}: {record.parent} was trained with other defaults"
                f" ({changed}); delete it, or name the recipe otherwise, to train it again"
            )
    command = [sys.executable, "run.py", "--data-dir", str(folder), "--trials", "0",
               "--runs-dir", str(folder / "runs"), "--submissions-dir", str(folder / "subs"),
               *shlex.split(flags), "--run-name", name]  # fmt: skip
    print("$ " + shlex.join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"recipe {name}: run.py ended with exit code {done.returncode}")
    if resumed_any(record.parent / "summary.json"):
        seconds += earlier
    write_json(record, {"flags": flags, "seconds": seconds})
    return seconds, record.parent


def stop_on_sigterm() -> None:
    """`kill` (SIGTERM) stops the benchmark as Ctrl-C does, with the run.py it is waiting on:
    subprocess.run kills its child on any exception, where a plain SIGTERM would end this
    process alone and leave the run training on, unwatched and holding its run folder."""

    def stop(signum, frame):
        sys.exit("holdout: stopped by SIGTERM, and the run training now with it;"
                 " the same command goes on from the models it finished")  # fmt: skip

    signal.signal(signal.SIGTERM, stop)


def resumed_any(summary: Path) -> bool:
    """Whether run.py resumed a model of the run from an earlier run (other flags giving the
    same run, or more models added to it): the earlier run's time is then part of the recipe's."""
    done = read_json(summary)
    models = [*done["folds"], *done["full_fits"], *done.get("pseudo_fits", [])]
    return any(model["resumed"] for model in models)


def changed_params(flags: str, config: Path) -> str:
    """The hyperparameters the run in `config` trained with that `run.py --trials 0 FLAGS`
    would not train with today (a default changed since), as "key recorded -> today, ...";
    "" when they agree, or when FLAGS take them from a search or a study (run.py's defaults
    and --set only train without either)."""
    from src.cli import parse_args
    from src.outputs.run_folder import changes
    from src.params import default_params

    cfg = parse_args(["--trials", "0", *shlex.split(flags)])
    if cfg.trials or cfg.study_name:
        return ""
    today = {**default_params(cfg.model), **dict(cfg.overrides)}
    recorded = read_json(config)["params"] if config.exists() else {}
    return ", ".join(changes(recorded, today))


def score_tta(run_dir: Path, images: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of the submission's models averaged over the plain and the 8 warped views."""
    import keras

    from src.model.augment.warp import warp
    from src.train.ensemble import predict_proba

    x = images.astype("float32")
    views = [x] + [np.asarray(warp(x, np.tile(np.float32(u), (len(x), 1)), None, TTA_RANGES))
                   for u in TTA_VIEWS.values()]  # fmt: skip
    paths = sorted(run_dir.glob("full_*/model.keras")) or sorted(
        run_dir.glob("fold_*/model.keras")
    )
    probas = []
    for path in paths:
        model = keras.saving.load_model(path)
        probas += [predict_proba(model, view) for view in views]
    return float(np.mean(np.mean(probas, axis=0).argmax(axis=1) == truth))


def score_run(run_dir: Path, truth: np.ndarray, classes: np.ndarray) -> dict:
    """The submission's accuracy on the held-out labels, the run's OOF, the re-combined
    ensembles (folds / full / all) from the models' saved test probabilities, and a
    pseudo-label run's first round. The held-out digits are the first rows of test.csv."""
    n = len(truth)
    sub = pd.read_csv(run_dir.parent.parent / "subs" / f"{run_dir.name}.csv")[:n]
    scores = {"acc": float(np.mean(sub["Label"].to_numpy() == classes[truth]))}
    summary = read_json(run_dir / "summary.json")
    if summary.get("oof_accuracy") is not None:
        scores["oof"] = summary["oof_accuracy"]
    probas = {}
    for part in sorted(run_dir.glob("*/predictions.npz")):
        with np.load(part) as z:
            probas[part.parent.name] = z["test_proba"][:n]
    groups = {
        "folds": [p for n, p in probas.items() if n.startswith("fold_")],
        "full": [p for n, p in probas.items() if n.startswith("full_")],
        "all": list(probas.values()),
    }
    if groups["folds"] and groups["full"]:  # with only one kind, every group is the submission
        for group, members in groups.items():
            scores[group] = float(np.mean(np.mean(members, axis=0).argmax(axis=1) == truth))
    scores["models"] = {name: int(np.sum(p.argmax(axis=1) != truth)) for name, p in probas.items()}
    if any(name.startswith("pseudo_") for name in probas):
        first = np.mean(groups["full"] or groups["folds"], axis=0).argmax(axis=1)
        scores["first"] = float(np.mean(first == truth))
        scores["first_predicted"] = first
    scores["predicted"] = classes.searchsorted(sub["Label"].to_numpy())
    return scores


def blend(run_dirs: list[Path], truth: np.ndarray, classes: np.ndarray) -> dict:
    """The runs' ensemble probabilities averaged: accuracy and predicted class indices."""
    probas = []
    for run_dir in run_dirs:
        with np.load(run_dir / "ensemble.npz") as z:
            probas.append(z["test_proba"][: len(truth)])
    predicted = np.mean(probas, axis=0).argmax(axis=1)
    return {"acc": float(np.mean(predicted == truth)), "predicted": predicted}


def compare(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float]:
    """Two recipes on the same digits: (digits only A got right, only B, the two-sided p of an
    exact sign test on those discordant digits: how often a coin would split them so unevenly).
    """
    from scipy.stats import binomtest

    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return only_a, only_b, float(p)


def never_right(predicted: dict[str, np.ndarray], truth: np.ndarray):
    """The digits every recipe got wrong: (their positions, the recipes' commonest answer for
    each, the share of recipes that gave it)."""
    answers = np.stack(list(predicted.values()))  # recipes x digits, class indices
    where = np.flatnonzero(np.all(answers != truth, axis=0))
    counts = np.stack([np.sum(answers[:, where] == c, axis=0) for c in range(answers.max() + 1)])
    return where, counts.argmax(axis=0), counts.max(axis=0, initial=0) / len(answers)


def run_classic(data, train_rows: np.ndarray, held_out: np.ndarray, seed: int):
    """The classic notebook on the training part: (held-out class indices, seconds)."""
    from benchmarks.classic import fit_classic
    from src.train.device import configure_device
    from src.train.ensemble import predict_proba

    configure_device("float32")  # as published
    start = time.perf_counter()
    model = fit_classic(data.x_train[train_rows], data.y_train[train_rows], seed, verbose=2)
    predicted = predict_proba(model, data.x_train[held_out]).argmax(axis=1)
    return predicted, time.perf_counter() - start


def recorded_classic(data, train_rows: np.ndarray, held_out: np.ndarray, seed: int, folder: Path):
    """`run_classic` once per split and seed: its answers and time are kept in the split's
    folder (`classic-seed{seed}.npz`) and a rerun re-scores them, as it does a recorded run."""
    record = folder / f"classic-seed{seed}.npz"
    if record.exists():
        with np.load(record) as z:
            if len(z["predicted"]) == len(held_out):
                return z["predicted"], float(z["seconds"])
    predicted, seconds = run_classic(data, train_rows, held_out, seed)
    np.savez(record, predicted=predicted, seconds=seconds)
    return predicted, seconds


def standard_error(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", help=f'NAME="RUN.PY FLAGS" (default: quick="{QUICK}")')
    p.add_argument("--data-dir", type=Path, required=True, help="the competition's files")
    p.add_argument("--splits", type=int, default=1, help="90/10 splits, each newly drawn")
    p.add_argument("--holdout", type=float, default=0.1, help="share of train.csv held out")
    p.add_argument("--seed", type=int, default=0, help="the splits' seed")
    p.add_argument("--rows", type=int, default=None, help="a stratified subset (smoke runs)")
    p.add_argument("--no-classic", action="store_true", help="leave the classic recipe out")
    p.add_argument("--tta", action="store_true", help="also score test-time augmentation")
    p.add_argument("--with-test", action="store_true",
                   help="the runs also get the competition's test digits (unscored)")  # fmt: skip
    p.add_argument(
        "--blend",
        action="append",
        default=[],
        metavar="A+B",
        help="also score the average of these recipes' submissions (repeatable)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "holdout",
                   help="where the split folders and their runs go")  # fmt: skip
    a = p.parse_args()
    stop_on_sigterm()
    named = dict(text.split("=", 1) for text in a.recipes) if a.recipes else DEFAULT_RECIPES
    print("command: python -m benchmarks.holdout " + shlex.join(sys.argv[1:]), flush=True)

    from src.data.load import load_digits
    from src.train.quiet import import_keras

    import_keras()  # before anything imports TensorFlow: without its start-up log
    data = load_digits(a.data_dir.resolve())
    file_rows = np.arange(len(data.y_train))  # each digit's row in train.csv
    if a.rows and a.rows < len(data.y_train):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(data.y_train)), train_size=a.rows,
                                   stratify=data.y_train, random_state=a.seed)  # fmt: skip
        from dataclasses import replace

        data = replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
        file_rows = keep
    classes = data.layout.classes
    for mix in a.blend:
        unknown = [part for part in mix.split("+") if part not in named]
        if unknown or "+" not in mix:
            p.error(f"--blend {mix}: name two or more of the recipes given ({', '.join(named)})")
    names = [*named, *a.blend, *([] if a.no_classic else ["classic"])]
    results = {name: [] for name in names}  # per split: (scores, seconds)
    splits = split_rows(data.y_train, a.holdout, a.splits, a.seed)
    for s, (train_rows, held_out) in enumerate(splits):
        folder = a.out / f"n{len(data.y_train)}-seed{a.seed}-split{s}{'-with-test' * a.with_test}"
        write_split(data, train_rows, held_out, folder, a.with_test)
        truth = data.y_train[held_out]
        print(f"split {s + 1}/{a.splits}: {len(train_rows)} training digits,"
              f" {len(held_out)} held out, in {folder}", flush=True)  # fmt: skip
        for name, flags in named.items():
            seconds, run_dir = run_recipe(flags, folder, f"{name}-split{s}")
            scores = score_run(run_dir, truth, classes)
            if a.tta:
                scores["tta"] = score_tta(run_dir, data.x_train[held_out], truth)
            results[name].append((scores, seconds))
            extra = "".join(f", {k} {v:.4f}" for k, v in scores.items()
                            if isinstance(v, float) and k != "acc")  # fmt: skip
            if len(scores["models"]) > 1:
                extra += ", wrong alone: " + ", ".join(
                    f"{model} {wrong}" for model, wrong in scores["models"].items()
                )
            print(f"split {s + 1}/{a.splits} {name}: {scores['acc']:.4f} on {len(held_out)}"
                  f" held-out digits{extra}, {seconds:.0f} s", flush=True)  # fmt: skip
        for mix in a.blend:
            parts = mix.split("+")
            scores = blend(
                [folder / "runs" / f"{part}-split{s}" for part in parts], truth, classes
            )
            seconds = sum(results[part][-1][1] for part in parts)
            results[mix].append((scores, seconds))
            print(f"split {s + 1}/{a.splits} {mix}: {scores['acc']:.4f} on {len(held_out)}"
                  f" held-out digits, {seconds:.0f} s together", flush=True)  # fmt: skip
        if not a.no_classic:
            predicted, seconds = recorded_classic(data, train_rows, held_out, a.seed + s, folder)
            acc = float(np.mean(predicted == truth))
            results["classic"].append(({"acc": acc, "predicted": predicted}, seconds))
            print(f"split {s + 1}/{a.splits} classic: {acc:.4f} on {len(held_out)} held-out"
                  f" digits, {seconds:.0f} s", flush=True)  # fmt: skip

    n = sum(len(held) for _, held in splits)
    truths = [data.y_train[held] for _, held in splits]
    truth = np.concatenate(truths)
    print(f"\n| recipe | accuracy on {n:,} held-out digits (± 1 s.e.) | wrong per split | OOF |"
          " folds / full / all models | TTA | s per split |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    result, right, answers = "RESULT", {}, {}
    for name in names:
        runs = results[name]
        predicted = np.concatenate([scores["predicted"] for scores, _ in runs])
        answers[name], right[name] = predicted, predicted == truth
        acc, mean_s = float(np.mean(right[name])), float(np.mean([s for _, s in runs]))
        oofs = [scores["oof"] for scores, _ in runs if "oof" in scores]
        oof = f"{np.mean(oofs):.4f}" if oofs else "-"
        mixes = [f"{np.mean([sc[g] for sc, _ in runs]):.4f}" for g in ("folds", "full", "all")
                 if all(g in sc for sc, _ in runs)]  # fmt: skip
        ttas = [sc["tta"] for sc, _ in runs if "tta" in sc]
        tta = f"{np.mean(ttas):.4f}" if ttas else "-"
        label = f"`{name}` ({named[name]})" if name in named else f"`{name}`"
        wrong = " / ".join(str(int(np.sum(sc["predicted"] != t)))
                           for (sc, _), t in zip(runs, truths, strict=True))  # fmt: skip
        print(f"| {label} | {acc:.4f} ± {standard_error(acc, n):.4f} | {wrong} | {oof} |"
              f" {' / '.join(mixes) or '-'} | {tta} | {mean_s:.0f} |")  # fmt: skip
        key = name.replace("+", "_")
        result += f" {key}_acc={acc:.4f} {key}_s={mean_s:.0f}"
        if oofs:
            result += f" {name}_oof={np.mean(oofs):.4f}"
        groups = ("folds", "full", "all")[: len(mixes)]
        result += "".join(f" {name}_{g}={m}" for g, m in zip(groups, mixes, strict=True))
        firsts = [sc["first"] for sc, _ in runs if "first" in sc]
        if firsts:
            result += f" {name}_first={np.mean(firsts):.4f}"
            first_right = np.concatenate([sc["first_predicted"] for sc, _ in runs]) == truth
            only_first, only_sub, p_value = compare(first_right, right[name])
            print(f"{name}'s first round vs its submission: {only_first} digits only the first"
                  f" round got right, {only_sub} only the submission (sign test p ="
                  f" {p_value:.2f})")  # fmt: skip
        if ttas:
            result += f" {name}_tta={tta}"
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            only_first, only_second, p_value = compare(right[first], right[second])
            print(f"{first} vs {second}: {only_first} digits only {first} got right,"
                  f" {only_second} only {second} (sign test p = {p_value:.2f})")  # fmt: skip
    where, answer, share = never_right(answers, truth)
    digits = np.concatenate([held for _, held in splits])[where]
    rows, figure = file_rows[digits], a.out / "never_right.png"
    figure.unlink(missing_ok=True)  # an earlier benchmark's
    if len(where):
        from src.review.figures import wrong_gallery

        labels, answered = classes[truth[where]], classes[answer]
        wrong_gallery(data.x_train[digits], labels, answered, share, rows, figure)
        print(f"{len(where)} of {n:,} held-out digits no recipe got right (train.csv rows"
              f" {', '.join(map(str, rows))}, from 0 below the header): {figure}")  # fmt: skip
    print(f"{result} never_right={len(where)}")


if __name__ == "__main__":
    main()
