"""A run, from validated data to a checked submission: every check first (src/preflight.py),
the plan, the parameters (defaults, a study's best, or a search first), the models trained by
the engine, their ensemble, the submission, the summary, the report, and maybe a submit; or,
as a search worker (`--search-only`), the search alone.
"""

from __future__ import annotations

import time

from src.config import Config
from src.outputs import run_folder
from src.outputs.files import show
from src.preflight import Checked, check_run


def choose_params(cfg: Config, data, known: dict | None) -> tuple[dict, str]:
    """Search, or take the study's best trial or the defaults the checks read (`known`); and
    say which. The run folder is made (or checked again) with the chosen parameters."""
    from src.outputs.files import mask_secrets, write_json
    from src.search import study as studies

    changed = "".join(f" --set {k}={v}" for k, v in cfg.overrides)
    if not cfg.trials and not cfg.study_name:
        run_folder.prepare(cfg, known, data)
        return known, f"defaults of --model {cfg.model}{changed}"
    if cfg.trials:
        study, seconds = timed_search(cfg, data)
        params = {**studies.best_params(study), **dict(cfg.overrides)}
    else:
        study, seconds, params = studies.open_study(cfg, create=False), 0.0, known
    run_folder.prepare(cfg, params, data)  # a resume whose search chose otherwise: refused
    summary = studies.study_summary(study, seconds)
    studies.print_study_summary(summary, params)
    write_json(cfg.run_dir / "best_params.json", params)
    write_json(cfg.run_dir / "study.json", summary)
    from src.search.plots import save_study_plots

    for name, result in save_study_plots(study, cfg.run_dir).items():
        print(f"  plot {name}: {result}")
    print(f"live view: optuna-dashboard {mask_secrets(cfg.storage_url)}")
    return params, f"best trial #{summary['best_trial']} of study {study.study_name!r}{changed}"


def timed_search(cfg: Config, data):
    """Run the search; the study and the seconds it took."""
    from src.search import worker

    start = time.perf_counter()
    study = worker.run_search(cfg, data)
    return study, time.perf_counter() - start


def search(cfg: Config) -> None:
    """--search-only: run trials of the (shared) study, then say how to train from it."""
    from src.outputs.files import mask_secrets
    from src.search import study as studies

    checked = checked_and_planned(cfg)
    cfg = checked.cfg
    study, seconds = timed_search(cfg, checked.data)
    summary = studies.study_summary(study, seconds)
    best = studies.best_params(study) if summary["complete"] else None
    studies.print_study_summary(summary, best)
    flags = f"--data-dir {show(cfg.data_dir)} --trials 0 --study-name {cfg.study}"
    if cfg.storage:
        flags += f" --storage {mask_secrets(cfg.storage)}"
    print(f"train the ensemble from the study's best trial: python run.py {flags}")


def train(cfg: Config) -> None:
    """Check everything, then train the run's models and write and check the submission."""
    start = time.perf_counter()
    checked = checked_and_planned(cfg)
    with run_folder.locked(checked.cfg):  # one process per run folder
        train_run(checked, start)


def checked_and_planned(cfg: Config) -> Checked:
    """Every check (nothing written before they pass), then the device and the plan."""
    checked = check_run(cfg)  # Keras is loaded only once the data are known to be good
    from src.train.device import accelerator, configure_determinism
    from src.train.engines import keep_compiled_programs
    from src.train.plan import plan_lines

    cfg = checked.cfg
    cache = keep_compiled_programs(cfg.runs_dir)
    kept = f"; compiled programs kept in {show(cache)}" if cache else ""
    print(f"device: {checked.device}{kept}", flush=True)
    configure_determinism(cfg.deterministic)
    for line in plan_lines(cfg, len(checked.data.y_train), len(checked.data.x_test),
                           on_cpu=accelerator() is None):  # fmt: skip
        print(line, flush=True)
    return checked


def train_run(checked: Checked, start: float) -> None:
    """Parameters, the run's models (and a pseudo-label round if asked), then `finish`."""
    from src.train import folds, pseudo
    from src.train.engines import make_engine
    from src.train.ensemble import average_predictions

    cfg, data = checked.cfg, checked.data
    params, origin = choose_params(cfg, data, checked.params)
    recipe = f"  recipe: {cfg.recipe}" if cfg.recipe else ""
    print(
        f"run: {cfg.run_name}{recipe}  model: {cfg.model}  augment: {cfg.augment}"
        f"  folds: {cfg.folds}  epochs: {cfg.epochs}  params: {origin}",
        flush=True,
    )

    def build(rows):
        return make_engine(cfg.engine, params, rows, epochs=cfg.epochs, patience=cfg.patience,
                           augment=cfg.augment)  # fmt: skip

    trainer = build(data)
    later_rows = cfg.pseudo_fits * (len(data.y_train) + len(data.x_test))  # at most all of test
    results, full_fits = folds.train_models(cfg, data, trainer, later_rows)
    engine = trainer.summary()
    round_two = None
    if cfg.pseudo_labels:
        first = average_predictions([m.test_proba for m in full_fits or results])
        chosen = pseudo.choose(first, cfg.pseudo_labels)
        print(f"── pseudo-labels: {chosen.describe(len(data.x_test))} join the"
              f" {len(data.y_train)} training rows ──", flush=True)  # fmt: skip
        extended = pseudo.extend(data, chosen)
        second = build(extended)
        round_two = (chosen, first, folds.train_pseudo_fits(cfg, extended, second))
        engine["pseudo_round"] = second.summary()
    finish(cfg, data, results, full_fits, start, engine, round_two)


def finish(cfg: Config, data, results, full_fits, start: float, engine: dict,
           round_two=None) -> None:  # fmt: skip
    """Ensemble the folds; check and write the submission; summary, report, maybe submit.

    `round_two`: (the pseudo-labels, the first round's test probabilities, the second round's
    models) when the run trained one; its models are then what the submission averages."""
    from src.outputs.submission import (
        check_submission,
        compare_with_previous,
        make_submission,
        submit_command,
        write_submission,
    )
    from src.review import summary as summaries
    from src.review.report import build_report
    from src.review.submit import message_for, submit_and_record
    from src.train import folds
    from src.train.ensemble import accuracy, average_predictions, save_ensemble

    oof = folds.out_of_fold(results, len(data.y_train)) if results else None  # None: --folds 0
    chosen, first, pseudo_fits = round_two or (None, None, [])
    test_proba = average_predictions([m.test_proba for m in pseudo_fits or full_fits or results])
    save_ensemble(cfg.run_dir / "ensemble.npz", oof, test_proba, data)
    sub = make_submission(test_proba.argmax(axis=1), data.layout)
    check_submission(sub, data.layout)
    path = cfg.submissions_dir / "submission.csv"
    diff = compare_with_previous(sub, path)  # before it is replaced
    write_submission(sub, path, copies=[cfg.submissions_dir / f"{cfg.run_name}.csv"])

    test_acc = None if data.test_labels is None else accuracy(data.test_labels, test_proba)
    oof_acc = None if oof is None else accuracy(data.y_train, oof)
    seconds = time.perf_counter() - start
    summary = summaries.summarize(results, oof_acc, test_acc, seconds, full_fits)
    if round_two:
        first_acc = None if data.test_labels is None else accuracy(data.test_labels, first)
        summary.update(summaries.pseudo_round(chosen, len(data.x_test), pseudo_fits, first_acc))
    summary.update(command=cfg.command, recipe=cfg.recipe, submission=show(path),
                   previous_diff=diff, engine=engine, precision=cfg.precision)  # fmt: skip
    summaries.save_summary(summary, cfg.run_dir)
    report_start = time.perf_counter()
    page = build_report(cfg.run_dir)
    report_seconds = time.perf_counter() - report_start
    message = message_for(cfg, summary)
    summaries.print_summary(
        summary, path, cfg.run_dir, submit_command(show(path), message, cfg.competition)
    )
    print(f"report: {show(page)}  (built in {report_seconds:.1f} s)")
    if cfg.submit:
        submit_and_record(cfg, message)
