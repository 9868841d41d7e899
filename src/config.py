"""The run's configuration: one dataclass, built once by `run.py` and passed explicitly."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: every default path hangs off it
ENGINES = ("auto", "sequential", "batched")  # see src/train/engines.py
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
# What run.py does: train (search first if asked, then the models, the submission), or be one
# worker of a shared search (--search-only), or only review: rebuild a run's report (--report),
# fetch Kaggle's scores (--scores), list the runs (--runs).
MODES = ("train", "search", "report", "scores", "runs")


@dataclass(frozen=True)
class Config:
    mode: str = "train"  # one of MODES
    data_dir: Path = ROOT / "input"  # train.csv + test.csv (or .csv.gz, or digit-recognizer.zip)
    folds: int = 5  # stratified k-fold: K models, each validated on its own 1/K; 0 = none
    epochs: int = 30  # per fold; early stopping on the fold's validation part may end sooner
    full_fits: int = 3  # models trained on all rows after the folds; the submission averages them
    pseudo_labels: float = 0.0  # a second round on test digits this sure (src/train/pseudo.py)
    patience: int = 10  # epochs without a better val_loss before a fold stops (best restored)
    trials: int = 20  # the study's total of finished trials over all workers; 0 = no search
    n_jobs: int = 1  # trial processes this worker runs at a time
    search_epochs: int = 10  # epochs per search trial (cheaper than the final training)
    search_folds: int = 1  # folds each trial trains and validates (of the K above)
    timeout: float | None = None  # stop starting new trials after this many seconds
    study_name: str = ""  # Optuna study; "" = "<model>-search"
    storage: str = ""  # Optuna RDB URL; "" = SQLite file runs/optuna.db
    model: str = "cnn"  # architecture: "cnn" (default) or "seed" (the write-up's 4-layer net)
    overrides: tuple[tuple[str, object], ...] = ()  # --set KEY=VALUE pairs, on top of the params
    augment: str = "affine"  # one of src.model.augment.BACKENDS
    engine: str = "auto"  # sequential | batched (src/train/engines.py); auto: batched on a JAX GPU
    precision: str = "auto"  # Keras dtype policy; auto: measured fastest for device and engine
    seed: int = 42  # folds, weight init, shuffling and augmentation all derive from it
    run_name: str = ""  # folder under runs_dir; the same name resumes that run
    deterministic: bool = False  # op-level determinism: byte-identical reruns on CPU
    submit: bool = False  # send the submission with the kaggle CLI at the end
    wait: bool = False  # after --submit, poll Kaggle until the submission is scored
    wait_timeout: float = 600.0  # ... for at most this many seconds
    notebook: str = ""  # the Kaggle notebook root when run inside one ("" elsewhere)
    message: str = ""  # the submission's message; "" = run name, folds and OOF accuracy
    competition: str = "digit-recognizer"
    on_kaggle: bool = False  # train as a Kaggle notebook on its GPU, then fetch the run
    kaggle_accelerator: str = "NvidiaTeslaT4"  # the notebook's machine (kaggle kernels push)
    kaggle_internet: bool = False  # the notebook's internet (off: it needs none)
    kaggle_timeout: float = 4 * 3600.0  # how long --on-kaggle waits for the notebook
    kaggle_poll: float = 30.0  # seconds between two looks at the notebook's status
    runs_dir: Path = ROOT / "runs"  # per-run artifacts (gitignored)
    submissions_dir: Path = ROOT / "submissions"

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
