"""The run's configuration: one dataclass, built once by `run.py` and passed explicitly.

Each setting is declared once, here: its default and, through `setting(...)`, its flags, help,
group, allowed values and whether it travels to a Kaggle notebook. The command line
(`src/cli.py`), the range checks, the notebook's command (`src/remote.py`) and the README's
flags table are all derived from these declarations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from src.model.augment import BACKENDS
from src.params import ARCHITECTURES, Range

ROOT = Path(__file__).resolve().parent.parent  # the repository: every default path hangs off it
ENGINES = ("auto", "sequential", "batched")  # see src/train/engines.py
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
# What run.py does, with the flag that asks for it and that flag's help: train (search first if
# asked, then the models and the submission) unless another mode's flag is given.
MODES = {
    "train": ("", "search if asked, train the models, write the submission"),
    "search": ("--search-only", "be one search worker of a shared study: run trials, train"
               " nothing"),
    "report": ("--report RUN_NAME", "rebuild runs/RUN_NAME's report.html from its files, no"
               " training; with --submit, submit that run; with --on-kaggle, fetch it"),
    "scores": ("--scores", "fetch Kaggle's scores of runs submitted earlier, no training"),
    "runs": ("--runs", "list every run, best out-of-fold accuracy first, and write"
             " runs/index.html"),
}  # fmt: skip


def setting(default, *flags: str, help: str = "", group: str = "", remote: bool = False,
            allowed: Range | tuple | None = None, metavar: str | None = None,
            shown: str | None = None):  # fmt: skip
    """A Config field and its command line: `flags` (none: not a flag), `help`, the `--help`
    group, `allowed` (a Range or the choices), whether the setting `remote`ly reaches a Kaggle
    notebook's `run.py`, and `shown`: the default as --help and the README say it."""
    meta = {"flags": flags, "help": help, "group": group, "remote": remote, "allowed": allowed,
            "metavar": metavar, "shown": shown}  # fmt: skip
    return field(default=default, metadata=meta)


AT_LEAST_0, AT_LEAST_1, POSITIVE = Range(0), Range(1), Range(0, low_open=True)


@dataclass(frozen=True)
class Config:
    # ── what to do ──
    mode: str = setting("train", allowed=tuple(MODES))  # flags: MODES
    recipe: str = setting(
        "", "--recipe", metavar="NAME", group="recipe",
        help="start from a recipe: quick, three or default (recipes/NAME.flags), or a file of"
        " flags; flags given here override it")  # fmt: skip
    # ── data ──
    data_dir: Path = setting(
        ROOT / "input", "--data-dir", metavar="DIR", group="data", shown="input/",
        help="folder with train.csv and test.csv (.csv, .csv.gz or the competition's zip); in a"
        " Kaggle notebook, the competition's folder")  # fmt: skip
    # ── training ──
    folds: int = setting(
        5, "--folds", metavar="K", group="training", remote=True, allowed=AT_LEAST_0,
        help="stratified folds: K models, each validated on its own 1/K (the out-of-fold"
        " accuracy); 0: none")  # fmt: skip
    full_fits: int = setting(
        3, "--full-fits", metavar="N", group="training", remote=True, allowed=AT_LEAST_0,
        help="models trained on every row after the folds; the submission averages them (0: the"
        " folds')")  # fmt: skip
    epochs: int = setting(
        30, "--epochs", metavar="E", group="training", remote=True, allowed=AT_LEAST_1,
        help="epochs per model (folds may stop earlier)")  # fmt: skip
    patience: int = setting(
        10, "--patience", metavar="P", group="training", remote=True, allowed=AT_LEAST_1,
        help="early stopping of fold models: epochs without a lower validation loss")  # fmt: skip
    pseudo_labels: float = setting(
        0.0, "--pseudo-labels", metavar="P", group="training", remote=True,
        allowed=Range(0, 1, high_open=True),
        help="a second round: test digits the first round gives probability >= P join the rows"
        " of new full-data models, which the submission averages; 0: off")  # fmt: skip
    model: str = setting(
        "cnn", "--model", group="training", remote=True, allowed=ARCHITECTURES,
        help="architecture: the BatchNorm CNN, or 'seed', the original 4-layer CNN")  # fmt: skip
    augment: str = setting(
        "affine", "--augment", group="training", remote=True, allowed=BACKENDS,
        help="one-pass affine warp, Keras preprocessing layers, ImageDataGenerator, or"
        " none")  # fmt: skip
    # --set KEY=VALUE pairs on top of the params (src/params.py is their one table)
    overrides: tuple[tuple[str, object], ...] = setting(
        (), "--set", metavar="KEY=VALUE", group="training", remote=True,
        help="override a hyperparameter of src/params.py (repeatable); a search holds it in"
        " every trial")  # fmt: skip
    engine: str = setting(
        "auto", "--engine", group="training", remote=True, allowed=ENGINES,
        help="one model.fit after another, or all models in one JAX program; auto: batched on"
        " a JAX GPU")  # fmt: skip
    precision: str = setting(
        "auto", "--precision", group="training", remote=True, allowed=PRECISIONS,
        help="Keras dtype policy; auto: the fastest measured for the device and"
        " engine")  # fmt: skip
    seed: int = setting(
        42, "--seed", metavar="S", group="training", remote=True, allowed=Range(0, 2**31 - 1),
        help="folds, weights, shuffling and augmentation all derive from it")  # fmt: skip
    deterministic: bool = setting(
        False, "--deterministic", group="training", remote=True,
        help="deterministic kernels: the same flags give a byte-identical submission"
        " (TensorFlow)")  # fmt: skip
    # ── search ──
    trials: int = setting(
        20, "--trials", "--max-trials", metavar="N", group="search", remote=True,
        allowed=AT_LEAST_0,
        help="the study's total of finished trials over all workers, searched before training;"
        " 0: no search")  # fmt: skip
    search_epochs: int = setting(
        10, "--search-epochs", metavar="E", group="search", remote=True, allowed=AT_LEAST_1,
        help="epochs per trial")  # fmt: skip
    search_folds: int = setting(
        1, "--search-folds", metavar="F", group="search", remote=True, allowed=AT_LEAST_1,
        help="folds each trial trains and validates (at most --folds)")  # fmt: skip
    timeout: float | None = setting(
        None, "--timeout", metavar="SECONDS", group="search", remote=True, allowed=POSITIVE,
        help="the search starts no new trial after this many seconds")  # fmt: skip
    study_name: str = setting(
        "", "--study-name", metavar="NAME", group="search", remote=True, shown="MODEL-search",
        help="the study to search or, with --trials 0, to train from its best trial")  # fmt: skip
    storage: str = setting(
        "", "--storage", metavar="URL", group="search", shown="sqlite:///runs/optuna.db",
        help="Optuna storage URL; postgresql://user:pass@host/db for many machines")  # fmt: skip
    # ── workers ──
    n_jobs: int = setting(
        1, "--n-jobs", metavar="J", group="workers", remote=True, allowed=AT_LEAST_1,
        help="search trials this process runs at a time, each in its own process")  # fmt: skip
    # ── submit ──
    submit: bool = setting(
        False, "--submit", group="submit",
        help="send the checked submission with the kaggle CLI")  # fmt: skip
    wait: bool = setting(
        False, "--wait", group="submit",
        help="after --submit, wait for Kaggle's score and record it in the run")  # fmt: skip
    wait_timeout: float = setting(
        600.0, "--wait-timeout", metavar="SECONDS", group="submit", allowed=POSITIVE,
        help="how long --wait waits")  # fmt: skip
    message: str = setting(
        "", "-m", "--message", metavar="TEXT", group="submit", shown="run, folds, OOF",
        help="the submission's message")  # fmt: skip
    competition: str = setting(
        "digit-recognizer", "--competition", metavar="NAME", group="submit", remote=True,
        help="where --submit sends, and the data a Kaggle notebook reads")  # fmt: skip
    # ── kaggle notebook ──
    on_kaggle: bool = setting(
        False, "--on-kaggle", group="kaggle notebook",
        help="train as a private Kaggle notebook on its GPU and bring the run home; with"
        " --report RUN, fetch one pushed before")  # fmt: skip
    kaggle_accelerator: str = setting(
        "NvidiaTeslaT4", "--kaggle-accelerator", metavar="NAME", group="kaggle notebook",
        help="the notebook's accelerator, as `kaggle kernels push --accelerator` takes"
        " it")  # fmt: skip
    kaggle_internet: bool = setting(
        False, "--kaggle-internet", group="kaggle notebook",
        help="turn the notebook's internet on (the run needs none)")  # fmt: skip
    kaggle_timeout: float = setting(
        4 * 3600.0, "--kaggle-timeout", metavar="SECONDS", group="kaggle notebook",
        allowed=POSITIVE,
        help="how long --on-kaggle waits for the notebook (it keeps running after)")  # fmt: skip
    kaggle_poll: float = setting(
        30.0, "--kaggle-poll", metavar="SECONDS", group="kaggle notebook", allowed=POSITIVE,
        help="seconds between two looks at the notebook's status")  # fmt: skip
    # ── output ──
    run_name: str = setting(
        "", "--run-name", metavar="NAME", group="output", remote=True, shown="MODEL-TIME",
        help="the run's folder under --runs-dir; the same name resumes the run")  # fmt: skip
    runs_dir: Path = setting(
        ROOT / "runs", "--runs-dir", metavar="DIR", group="output", shown="runs/",
        help="where run folders and the default study go")  # fmt: skip
    submissions_dir: Path = setting(
        ROOT / "submissions", "--submissions-dir", metavar="DIR", group="output",
        shown="submissions/", help="where submission.csv goes")  # fmt: skip
    # Not flags: the Kaggle notebook's root when run inside one ("" elsewhere), and the command
    # as typed, passwords masked (the run's summary records it).
    notebook: str = setting("")
    command: str = setting("")

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_name

    @property
    def pseudo_fits(self) -> int:
        """The pseudo-label round's models: as many as the full fits, at least one; 0 if off."""
        return max(self.full_fits, 1) if self.pseudo_labels else 0

    @property
    def study(self) -> str:
        return self.study_name or f"{self.model}-search"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.runs_dir / 'optuna.db'}"

    def training_settings(self) -> dict:
        """What decides a run's models: a resumed run must match it to reuse finished folds.

        Not the number of full fits: a rerun with more keeps those trained and adds copies.
        With pseudo-labels it is: the first round's models choose the second round's rows."""
        keep = ("folds", "epochs", "patience", "model", "augment", "seed", "deterministic",
                "engine", "precision", "pseudo_labels")  # fmt: skip
        keep += ("full_fits",) if self.pseudo_labels else ()
        return {k: v for k, v in asdict(self).items() if k in keep}


SETTINGS = {f.name: f for f in fields(Config)}  # every declaration, by field name


def mode_flag(mode: str) -> str:
    """The flag that asks for a mode, e.g. 'report' -> '--report' ("" for train)."""
    return MODES[mode][0].split(" ")[0]


def flag_of(name: str) -> str:
    """The flag users know a setting by (its first long name), e.g. 'folds' -> '--folds'."""
    flags = [f for f in SETTINGS[name].metadata["flags"] if f.startswith("--")]
    return flags[0] if flags else name
