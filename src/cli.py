"""The command line: flags in groups, declared in one table, checked together, -> Config.

Bad flags exit with code 2 and one line (argparse's own `error`).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from src.config import ENGINES, PRECISIONS, Config
from src.data.notebook import competition_data, kaggle_root
from src.model import augment
from src.params import DEFAULTS, parse_override

USAGE = """Digit Recognizer end to end: validate the CSVs, search, train a k-fold CNN ensemble and
full-data models, write and check a submission.

    python run.py --folds 5                                    # Kaggle's data in input/
    python run.py --data-dir input/sample --folds 5 --trials 0 # the bundled sample, no search
    python run.py --folds 0 --full-fits 1 --epochs 18 --trials 0   # quick: one model, all rows

Artifacts go to runs/<run-name>/ (the same --run-name resumes a run), the submission to
submissions/submission.csv. README.md explains every flag with examples.
"""


def at_least(minimum: int):
    """An argparse type: an integer >= minimum."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # what argparse calls the type in its messages
    return parse


def flag(*names: str, help: str, **options) -> tuple[tuple[str, ...], dict]:
    """One row of FLAGS: argparse's add_argument arguments."""
    return names, {"help": help, **options}


D = Config()
FLAGS = {
    "data": [
        flag("--data-dir", metavar="DIR", type=Path, default=None,
             help="folder with train.csv and test.csv (.csv, .csv.gz or the competition's"
             " zip); default: input/, or the competition's folder in a Kaggle notebook"),
    ],
    "training": [
        flag("--folds", metavar="K", type=at_least(0), default=D.folds,
             help="stratified folds: K models, each validated on its own 1/K (the out-of-fold"
             " accuracy); 0: none, only --full-fits"),
        flag("--full-fits", metavar="N", type=at_least(0), default=D.full_fits,
             help="models trained on every training row after the folds; the submission"
             " averages them (0: the folds')"),
        flag("--epochs", metavar="E", type=at_least(1), default=D.epochs,
             help="epochs per model (folds may stop earlier)"),
        flag("--pseudo-labels", metavar="P", type=float, default=D.pseudo_labels,
             help="a second round: test digits the first round's ensemble gives probability"
             " >= P join the training rows of new full-data models, which the submission"
             " averages (as many as --full-fits, at least one); 0: off"),
        flag("--patience", metavar="P", type=at_least(1), default=D.patience,
             help="early-stopping patience: epochs without a lower validation loss"),
        flag("--model", choices=sorted(DEFAULTS), default=D.model,
             help="architecture; 'seed' is the original 4-layer CNN"),
        flag("--augment", choices=augment.BACKENDS, default=D.augment,
             help="augmentation: one-pass affine warp, Keras preprocessing layers,"
             " ImageDataGenerator, or none"),
        flag("--set", metavar="KEY=VALUE", action="append", default=[],
             help="override one hyperparameter (repeatable), e.g. --set filters=48; a search"
             " holds it in every trial and draws the rest"),
        flag("--engine", choices=ENGINES, default=D.engine,
             help="sequential (one model.fit after another) or batched (all models in one JAX"
             " program); auto: batched on a JAX GPU"),
        flag("--precision", choices=PRECISIONS, default=D.precision,
             help="Keras dtype policy; auto: the one measured fastest for this device and engine"),
        flag("--seed", metavar="S", type=int, default=D.seed,
             help="folds, weights, shuffling and augmentation derive from it"),
        flag("--deterministic", action="store_true",
             help="deterministic kernels: the same flags give a byte-identical submission"
             " (TensorFlow)"),
    ],
    "search": [
        flag("--trials", "--max-trials", metavar="N", type=at_least(0), default=D.trials,
             help="the Optuna study's total of finished trials over all workers, searched"
             " before training; 0: no search (the defaults, or --study-name's best)"),
        flag("--search-epochs", metavar="E", type=at_least(1), default=D.search_epochs,
             help="epochs per trial"),
        flag("--search-folds", metavar="F", type=at_least(1), default=D.search_folds,
             help="folds each trial trains and validates"),
        flag("--timeout", metavar="SECONDS", type=float, default=None,
             help="seconds after which the search starts no new trial (each worker runs one)"),
        flag("--study-name", metavar="NAME", default="",
             help="the study to search or, with --trials 0, to train from (default:"
             " MODEL-search)"),
        flag("--storage", metavar="URL", default="",
             help="Optuna storage URL (default: sqlite:///runs/optuna.db;"
             " postgresql://user:pass@host/db for many machines)"),
    ],
    "workers": [
        flag("--search-only", action="store_true",
             help="be one search worker of a shared study: run trials, train nothing"),
        flag("--n-jobs", metavar="J", type=at_least(1), default=D.n_jobs,
             help="trials this process runs at a time, each in its own process"),
    ],
    "review and submit": [
        flag("--report", metavar="RUN_NAME", default="",
             help="rebuild runs/RUN_NAME's report.html from its files, no training (with"
             " --submit: submit that run)"),
        flag("--submit", action="store_true",
             help="submit the checked submission with the kaggle CLI"),
        flag("--wait", action="store_true",
             help="after --submit, wait for Kaggle's score and record it in the run"),
        flag("--wait-timeout", metavar="SECONDS", type=float, default=D.wait_timeout,
             help="how long --wait waits"),
        flag("--scores", action="store_true",
             help="fetch Kaggle's scores of runs submitted earlier, no training"),
        flag("--runs", action="store_true",
             help="list every run, best out-of-fold accuracy first, and write runs/index.html"),
        flag("-m", "--message", metavar="TEXT", default="",
             help="submission message (default: run name, folds, OOF accuracy)"),
        flag("--competition", metavar="NAME", default=D.competition,
             help="the Kaggle competition: where --submit sends, and the data folder in a"
             " notebook"),
    ],
    "kaggle notebook": [
        flag("--on-kaggle", action="store_true",
             help="train as a private Kaggle notebook on its GPU (the kaggle CLI pushes it),"
             " wait, and bring the run folder and submission home; again with the same"
             " --run-name, or with --report RUN, it comes back to that notebook"),
        flag("--kaggle-accelerator", metavar="NAME", default=D.kaggle_accelerator,
             help="the notebook's accelerator, as `kaggle kernels push --accelerator` takes it"),
        flag("--kaggle-internet", action="store_true",
             help="turn the notebook's internet on (off by default: the run needs none)"),
        flag("--kaggle-timeout", metavar="SECONDS", type=float, default=D.kaggle_timeout,
             help="how long --on-kaggle waits for the notebook (it keeps running after)"),
        flag("--kaggle-poll", metavar="SECONDS", type=float, default=D.kaggle_poll,
             help="seconds between two looks at the notebook's status"),
    ],
    "output": [
        flag("--run-name", metavar="NAME", default="",
             help="run folder under --runs-dir; reuse a name to resume (default: model and"
             " time stamp)"),
        flag("--runs-dir", metavar="DIR", type=Path, default=None,
             help="where run folders and the default study go (default: runs/; in a Kaggle"
             " notebook /kaggle/working/runs)"),
        flag("--submissions-dir", metavar="DIR", type=Path, default=None,
             help="where submission.csv goes (default: submissions/; in a Kaggle notebook"
             " /kaggle/working)"),
    ],
}  # fmt: skip


# The modes other than "train" (src/config.py MODES) and the flag that asks for each.
MODE_FLAGS = {"search": "--search-only", "report": "--report", "scores": "--scores",
              "runs": "--runs"}  # fmt: skip


def modes(a: argparse.Namespace) -> list[str]:
    """The modes the flags ask for: none (train), one, or more (`check` refuses them)."""
    return [m for m, f in MODE_FLAGS.items() if getattr(a, f[2:].replace("-", "_"))]


def build_parser() -> argparse.ArgumentParser:
    """The parser, one argument group per table entry; numbers and choices show their default."""
    p = argparse.ArgumentParser(description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for title, flags in FLAGS.items():
        group = p.add_argument_group(title)
        for names, options in flags:
            default = options.get("default")
            if (
                isinstance(default, (int, float, str))
                and default != ""
                and "(default" not in (options["help"])
            ):
                options = {**options, "help": options["help"] + " (default: %(default)s)"}
            group.add_argument(*names, **options)
    return p


def check(a: argparse.Namespace) -> str | None:
    """The flags' combinations: the first problem, as argparse's error message, or None."""
    if a.folds == 1:
        return "--folds: one fold validates on every row it trained on; give 0 or K >= 2"
    if not a.folds and not a.full_fits:
        return "--folds 0 --full-fits 0 trains no model; give --full-fits N (N >= 1)"
    if not a.folds and a.trials:
        return ("--folds 0: the search validates its trials on folds; use --trials 0 (with"
                " --study-name NAME to train a finished study's best)")  # fmt: skip
    asked = [MODE_FLAGS[m] for m in modes(a)]
    if len(asked) > 1:
        return f"{asked[0]} and {asked[1]} are different modes; give one of them"
    if a.search_only and not a.trials:
        return "--search-only: needs trials to run; give --trials N"
    if a.trials and a.model != "cnn":
        return f"--trials: the search space is for --model cnn; use --trials 0 with {a.model}"
    if not 0 <= a.pseudo_labels < 1:
        return (f"--pseudo-labels: a probability below 1 (e.g. 0.99), or 0 for none; got"
                f" {a.pseudo_labels:g}")  # fmt: skip
    if a.timeout is not None and a.timeout <= 0:
        return f"--timeout: must be positive, got {a.timeout:g}"
    if a.on_kaggle and (a.search_only or a.scores or a.runs):
        return "--on-kaggle: trains a run, or with --report RUN fetches one; no other mode"
    if a.on_kaggle and a.storage:
        return "--on-kaggle: the notebook cannot reach --storage (it runs offline); leave it out"
    if a.kaggle_timeout <= 0 or a.kaggle_poll <= 0:
        return "--kaggle-timeout and --kaggle-poll: must be positive"
    if a.wait and not a.submit:
        return "--wait: waits for the score of a --submit; add --submit"
    if a.wait_timeout <= 0:
        return f"--wait-timeout: must be positive, got {a.wait_timeout:g}"
    if a.report and a.run_name and a.run_name != a.report:
        return "--report names the run itself; leave out --run-name"
    name = a.report or a.run_name
    if name and (Path(name).name != name or name.startswith(".")):
        flag = "--report" if a.report else "--run-name"
        return f"{flag}: {name!r} must be a plain folder name (no '/' or leading '.')"
    return None


def places(a: argparse.Namespace) -> tuple[Path, Path, Path, str]:
    """(data dir, runs dir, submissions dir, notebook root): the flags, else the defaults, which
    inside a Kaggle notebook are its input and working folders."""
    root = kaggle_root()
    if root is None:
        return (a.data_dir or D.data_dir, a.runs_dir or D.runs_dir,
                a.submissions_dir or D.submissions_dir, "")  # fmt: skip
    data = a.data_dir or competition_data(root, a.competition)
    if data is None:
        raise ValueError(
            f"in a Kaggle notebook: no folder with a train.csv under {root / 'input'}; add the"
            f" competition's data to the notebook (--competition {a.competition}) or give"
            " --data-dir"
        )
    working = root / "working"
    return data, a.runs_dir or working / "runs", a.submissions_dir or working, str(root)


def parse_args(argv: list[str] | None = None) -> Config:
    """Command line -> Config."""
    p = build_parser()
    a = p.parse_args(argv)
    problem = check(a)
    if problem:
        p.error(problem)
    try:
        data_dir, runs_dir, submissions_dir, notebook = places(a)
    except ValueError as e:
        p.error(str(e))
    try:
        overrides = tuple(parse_override(text, a.model) for text in a.set)
    except ValueError as e:
        p.error(f"--set {e}")
    return Config(
        data_dir=data_dir.resolve(), folds=a.folds, epochs=a.epochs, full_fits=a.full_fits,
        patience=a.patience, pseudo_labels=a.pseudo_labels, trials=a.trials, n_jobs=a.n_jobs,
        mode=(modes(a) or ["train"])[0],
        search_epochs=a.search_epochs, search_folds=a.search_folds, timeout=a.timeout,
        study_name=a.study_name, storage=a.storage, model=a.model, overrides=overrides,
        augment=a.augment, engine=a.engine, precision=a.precision, seed=a.seed,
        run_name=a.report or a.run_name or f"{a.model}-{datetime.now():%Y%m%d-%H%M%S}",
        deterministic=a.deterministic, submit=a.submit, wait=a.wait, wait_timeout=a.wait_timeout,
        message=a.message, competition=a.competition, runs_dir=runs_dir.resolve(),
        submissions_dir=submissions_dir.resolve(), notebook=notebook, on_kaggle=a.on_kaggle,
        kaggle_accelerator=a.kaggle_accelerator, kaggle_internet=a.kaggle_internet,
        kaggle_timeout=a.kaggle_timeout,
        kaggle_poll=a.kaggle_poll,
    )  # fmt: skip
