"""Every check of a run that trains or searches, before its first byte is written.

The flags and their combinations were checked by `src/cli.py`. Here, in the order that fails
fastest: Kaggle's credentials and CLI for `--submit`; the data; what the engine and device can
do; the output folders (made and probed); a resumed run against its record; the study's storage
(and, to train from a finished study, its best trial). A refused run ends in one line (a
UserError) and leaves nothing: no lock, no config.json, no study row, no folder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from src import UserError
from src.config import Config, flag_of
from src.data.load import Digits, check_class_counts, load_digits
from src.outputs import run_folder
from src.outputs.checks import output_folders
from src.outputs.files import show


@dataclass(frozen=True)
class Checked:
    """What the checks found: the config with its engine and precision resolved, the data,
    the device line, and the hyperparameters where they are known before any search."""

    cfg: Config
    data: Digits
    device: str
    params: dict | None


def check_run(cfg: Config) -> Checked:
    """Run every check (module docstring); UserError at the first problem, nothing written."""
    if cfg.submit:
        from src.review.kaggle_cli import check_ready

        check_ready(flag_of("submit"))
    if cfg.notebook:
        print(f"kaggle notebook ({cfg.notebook}): data from {show(cfg.data_dir)}, runs in"
              f" {show(cfg.runs_dir)}, submission to"
              f" {show(cfg.submissions_dir / 'submission.csv')}", flush=True)  # fmt: skip
    data = load_digits(cfg.data_dir)  # everything the user can get wrong in the data fails here
    print(f"data: {len(data.y_train)} training images from {data.source},"
          f" {len(data.x_test)} test images", flush=True)  # fmt: skip
    check_class_counts(data, cfg.folds)
    cfg, device = check_device(cfg)
    resumes = cfg.mode == "train"
    with output_folders(cfg):  # made and probed; removed again if a check below refuses
        if resumes:
            run_folder.check_resume(cfg, data)  # the settings and data, before any search
        params = known_params(cfg)  # the storage is opened last: it may create a database
        if resumes and params is not None:
            run_folder.check_resume(cfg, data, params)
    return Checked(cfg, data, device, params)


def check_device(cfg: Config) -> tuple[Config, str]:
    """Keras loaded (only once the data are known to be good: bad input fails in a second), the
    engine and precision resolved and checked against the settings; the device's line."""
    from src.train.quiet import import_keras

    import_keras()
    from src.model.augment.layers import check_augment
    from src.train.device import augment_in_model, configure_device
    from src.train.engines import check_engine_settings, resolve_engine

    engine = resolve_engine(cfg.engine)
    check_augment(cfg.augment, in_model=engine == "batched" or augment_in_model())
    precision, device = configure_device(cfg.precision, engine)
    check_engine_settings(engine, precision, cfg.overrides)
    return replace(cfg, engine=engine, precision=precision), device  # what the run records


def known_params(cfg: Config) -> dict | None:
    """The hyperparameters, where known before training: the defaults with --set, or a finished
    study's best trial (read here, so a missing study or trial refuses the run before anything
    is written). None when a search will choose them; its storage is opened here all the same."""
    from src.params import default_params

    if not cfg.trials and not cfg.study_name:
        return {**default_params(cfg.model), **dict(cfg.overrides)}
    if cfg.trials:
        from src.search.storage import check_writable, open_storage

        open_storage(cfg.storage_url)
        check_writable(cfg.storage_url)
        return None
    from src.search import study as studies

    if cfg.storage_url.startswith("sqlite:///") and not Path(cfg.storage_url[10:]).exists():
        raise UserError(
            f"--study-name {cfg.study}: {cfg.storage_url[10:]} does not exist, so holds no"
            " study; search first with --trials N, or give the --storage that has it"
        )
    params = studies.best_params(studies.open_study(cfg, create=False))
    return {**params, **dict(cfg.overrides)}
