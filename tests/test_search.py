"""Optuna search: a real study in a real SQLite file, tiny budgets, feeding the real ensemble."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import keras
import optuna
import pytest

import run
from conftest import NARROW, Runner, write_slice
from src.config import ROOT, Config
from src.data.load import load_digits
from src.params import SEARCHED, default_params
from src.search import study as studies
from src.search import trial as trials
from src.search import worker
from src.search.plots import save_study_plots
from src.train import sequential

TINY = ["--folds", "2", "--epochs", "1", "--search-epochs", "2", "--seed", "3", "--full-fits", "0",
        *NARROW]  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def searched(tmp_path_factory, sample_frames):
    """One 3-trial search + ensemble, shared by the tests that inspect it."""
    root = tmp_path_factory.mktemp("search")
    data = write_slice(root / "data", sample_frames, 600, 100)
    runner = Runner(root, capsys=None)
    storage = f"sqlite:///{root / 'study.db'}"
    return runner, data, storage


def call(runner, capsys, *args):
    runner.capsys = capsys
    return runner(*args)


def test_three_trial_search_feeds_the_ensemble_and_plots(searched, capsys):
    runner, data, storage = searched
    args = ["--data-dir", str(data), *TINY, "--trials", "3", "--storage", storage]
    code, out, err = call(runner, capsys, *args, "--study-name", "s", "--run-name", "r")
    assert code == 0, err
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.get_trials(states=studies.FINISHED)) == 3
    # defaults go first; --set holds its keys in every trial, and the sampler does not draw them
    assert study.trials[0].user_attrs["params"] == {**default_params("cnn"), "filters": 8}
    assert sorted(study.trials[1].params) == sorted(set(SEARCHED) - {"filters"})
    assert {t.user_attrs["params"]["filters"] for t in study.trials} == {8}
    run = runner.runs / "r"
    best = json.loads((run / "best_params.json").read_text())
    assert best == study.best_trial.user_attrs["params"]
    # the final folds were built from exactly those parameters
    assert json.loads((run / "config.json").read_text())["params"] == best
    model = keras.saving.load_model(run / "fold_1" / "model.keras")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].filters == best["filters"] and convs[0].kernel_size[0] == best["kernel_size"]
    for name in ("optimization_history", "intermediate_values", "timeline", "slice",
                 "parallel_coordinate", "param_importances", "contour"):  # fmt: skip
        png = (run / f"study_{name}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 5_000, name
        assert f'src="study_{name}.png"' in (run / "report.html").read_text()  # on the page
    assert "3 complete, 0 pruned, 0 failed" in out
    assert f"optuna-dashboard {storage}" in out
    assert "best trial #" in out


def test_trials_zero_trains_from_a_named_study(searched, capsys):
    runner, data, storage = searched
    args = ["--data-dir", str(data), *TINY, "--trials", "0", "--storage", storage]
    code, out, err = call(runner, capsys, *args, "--study-name", "s", "--run-name", "r0")
    assert code == 0, err
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 3  # no new trials
    params = json.loads((runner.runs / "r0" / "config.json").read_text())["params"]
    assert params == study.best_trial.user_attrs["params"]
    assert f"best trial #{study.best_trial.number} of study 's'" in out


@pytest.mark.parametrize(
    "flags, fragments, secret",
    [
        (["--study-name", "nope", "--trials", "0"], ["'nope'", "no such study"], None),
        (["--storage", "notadb://x", "--trials", "1"], ["--storage notadb://x"], None),
        (
            ["--storage", "postgresql://me:hunter2@127.0.0.1:9/db", "--trials", "1"],
            ["--storage postgresql://me:***@127.0.0.1:9/db", "cannot open"],
            "hunter2",
        ),
    ],
)
def test_bad_study_or_storage_exit_2_without_secrets(searched, capsys, flags, fragments, secret):
    runner, data, storage = searched
    flags = flags if "--storage" in flags else [*flags, "--storage", storage]
    code, out, err = call(runner, capsys, "--data-dir", str(data), *TINY, *flags)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in err
    if secret:
        assert secret not in out + err


def search_config(tmp_path, data_dir, **kw) -> Config:
    base = dict(data_dir=data_dir, folds=2, search_epochs=2, trials=3, seed=0,
                runs_dir=tmp_path, storage=f"sqlite:///{tmp_path / 'db.sqlite'}")  # fmt: skip
    return Config(**{**base, **kw})


def test_aggressive_pruner_prunes_and_steps_continue_across_folds(tmp_path, small_dir):
    data = load_digits(small_dir)
    cfg = search_config(tmp_path, small_dir, study_name="prune")
    studies.open_study(cfg, create=True)
    trials.run_trials(cfg, data, optuna.pruners.ThresholdPruner(lower=0.999), n_trials=3)
    study = optuna.load_study(study_name="prune", storage=cfg.storage_url)
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len(pruned) == 3
    assert all(list(t.intermediate_values) == [0] for t in pruned)  # stopped at the first epoch

    cfg = search_config(tmp_path, small_dir, study_name="steps", search_folds=2, trials=1)
    studies.open_study(cfg, create=True)
    trials.run_trials(cfg, data, optuna.pruners.NopPruner())
    (trial,) = optuna.load_study(study_name="steps", storage=cfg.storage_url).trials
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3]  # 2 folds x 2 epochs, no repeats
    # each fold's best epoch is kept beside the objective (benchmarks/search_agreement)
    per_fold = [max(trial.intermediate_values[s] for s in (0, 1)),
                max(trial.intermediate_values[s] for s in (2, 3))]  # fmt: skip
    assert trial.user_attrs["fold_accuracy"] == pytest.approx(per_fold)
    assert trial.value == pytest.approx(sum(per_fold) / 2)
    losses = trial.user_attrs["fold_loss"]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)


def test_failed_trial_is_recorded_and_the_study_goes_on(tmp_path, small_dir, monkeypatch):
    real, calls = sequential.build_model, []

    def out_of_memory_once(params, *args):
        calls.append(params)
        if len(calls) == 1:
            raise MemoryError("simulated: this configuration does not fit")
        return real(params, *args)

    monkeypatch.setattr(sequential, "build_model", out_of_memory_once)
    cfg = search_config(tmp_path, small_dir, study_name="fail", trials=2, search_epochs=1)
    studies.open_study(cfg, create=True)
    trials.run_trials(cfg, load_digits(small_dir), n_trials=2)
    study = optuna.load_study(study_name="fail", storage=cfg.storage_url)
    summary = studies.study_summary(study, 0.0)
    assert (summary["failed"], summary["complete"]) == (1, 1)
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_search_resumes_after_sigkill(tmp_path, small_dir):
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    cmd = [
        sys.executable, str(ROOT / "run.py"), "--data-dir", str(small_dir), *TINY,
        "--search-epochs", "1", "--trials", "3", "--storage", storage, "--study-name", "k",
        "--run-name", "k", "--runs-dir", str(tmp_path / "runs"),
        "--submissions-dir", str(tmp_path / "subs"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    complete = []
    deadline = time.monotonic() + 180
    try:
        while not complete and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="k", storage=storage)
            except KeyError:
                continue  # the study is not created yet
            complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert complete, "no trial completed before the deadline"
    before = {t.number: (t.value, t.datetime_complete) for t in complete}
    killed = optuna.load_study(study_name="k", storage=storage)
    assert len(killed.get_trials(states=studies.FINISHED)) < 3  # the kill left trials to do
    assert not (tmp_path / "subs" / "submission.csv").exists()  # and the training

    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="k", storage=storage)
    assert len(study.get_trials(states=studies.FINISHED)) == 3  # --trials is the study's total
    after = {t.number: (t.value, t.datetime_complete) for t in study.trials}
    for number, record in before.items():
        assert after[number] == record  # completed trials are kept, never rerun
    assert (tmp_path / "subs" / "submission.csv").exists()


def test_plots_needing_more_trials_are_skipped_with_a_note(tmp_path):
    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.FloatDistribution(0.1, 0.5)
    study.add_trial(
        optuna.trial.create_trial(
            params={"dropout": 0.3}, distributions={"dropout": dist}, value=0.9,
            intermediate_values={0: 0.5, 1: 0.9},
        )
    )  # fmt: skip
    result = save_study_plots(study, tmp_path)
    assert result["param_importances"].startswith("skipped: needs 2 complete trials")
    assert result["contour"].startswith("skipped")
    assert result["optimization_history"] == "study_optimization_history.png"
    assert (tmp_path / "study_optimization_history.png").read_bytes().startswith(PNG)
    assert not (tmp_path / "study_param_importances.png").exists()


def test_timeout_stops_starting_trials(tmp_path, small_dir):
    cfg = search_config(tmp_path, small_dir, study_name="timeout", trials=5, search_epochs=1,
                        timeout=0.01)  # fmt: skip
    study = worker.run_search(cfg, load_digits(small_dir))
    # however soon the timeout passes, the worker runs one trial (as Optuna does), then no more
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell here, no optimize loop
def test_processes_opening_the_study_together_draw_different_params(tmp_path, small_dir):
    """Two trial processes that open the study at the same trial count (the same moment)."""
    cfg = search_config(tmp_path, small_dir, study_name="twins")
    first, second = studies.open_study(cfg, create=True), studies.open_study(cfg, create=False)
    studies.draw_params(first.ask(), cfg.seed)  # trial 0: the defaults
    a, b = first.ask(), second.ask()
    drawn_a, drawn_b = studies.draw_params(a, cfg.seed), studies.draw_params(b, cfg.seed)
    assert drawn_a != drawn_b
    again = studies.open_study(replace(cfg, study_name="twins-again"), create=True)
    studies.draw_params(again.ask(), cfg.seed)
    assert studies.draw_params(again.ask(), cfg.seed) == drawn_a  # same number, same draw


def test_n_jobs_runs_trials_side_by_side_and_stops_at_the_target(tmp_path, small_dir):
    cfg = search_config(tmp_path, small_dir, study_name="jobs", trials=3, search_epochs=1,
                        n_jobs=2)  # fmt: skip
    study = worker.run_search(cfg, load_digits(small_dir))
    finished = study.get_trials(states=studies.FINISHED)
    assert len(finished) == 3
    assert all(t in finished or t.user_attrs.get("surplus") for t in study.trials)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in finished)
    overlaps = [a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)]
    assert any(overlaps)  # two trials ran at the same time


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell here, no optimize loop
def test_a_trial_created_past_the_cap_is_marked_surplus_and_never_trains(tmp_path, small_dir):
    cfg = search_config(tmp_path, small_dir, study_name="cap", trials=2)
    study = studies.open_study(cfg, create=True)
    first, second = study.ask(), study.ask()  # two workers' trials, both running
    late = study.ask()  # a third worker raced past the pre-check
    check = trials.Objective(cfg, load_digits(small_dir)).check_cap
    check(second)  # one trial ahead of it: within the cap
    with pytest.raises(trials.SurplusTrial, match="cap of 2"):
        check(late)
    assert late.user_attrs["surplus"] is True
    study.tell(late, state=optuna.trial.TrialState.FAIL)
    study.tell(first, 0.5)
    study.tell(second, 0.6)
    summary = studies.study_summary(study, 0.0)
    assert (summary["complete"], summary["failed"], summary["surplus"]) == (2, 0, 1)


def test_trials_is_the_studys_total_and_max_trials_its_old_name(capsys):
    assert run.parse_args(["--search-only", "--trials", "6"]).trials == 6
    assert run.parse_args(["--search-only", "--max-trials", "4"]).trials == 4
    with pytest.raises(SystemExit) as exit_:
        run.parse_args(["--search-only", "--trials", "0"])
    assert exit_.value.code == 2 and "--search-only" in capsys.readouterr().err


def test_a_read_only_storage_is_one_line_before_any_trial(tmp_path, small_dir, capsys):
    db = tmp_path / "ro.db"
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")  # tables exist
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    runner = Runner(tmp_path, capsys)
    code, _, err = runner("--data-dir", str(small_dir), *TINY, "--trials", "2", "--storage",
                          read_only, "--run-name", "never")  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "cannot write there" in err and "readonly" in err
    assert runner.written() == [] and not runner.runs.exists()  # no lock, no folder


def test_a_plain_postgresql_url_names_the_installed_driver():
    """SQLAlchemy 2.0 (the Kaggle image's) reads postgresql:// as psycopg2; with only psycopg 3
    installed (requirements.txt) the URL must name it, password and options kept."""
    from sqlalchemy.engine import make_url

    from src.search.storage import with_driver

    url = "postgresql://u:p%40ss@host:5432/db?options=-csearch_path%3Dx"
    driven = make_url(with_driver(url))
    psycopg2 = importlib.util.find_spec("psycopg2") is not None
    assert driven.drivername == ("postgresql" if psycopg2 else "postgresql+psycopg")
    assert driven.password == "p@ss" and driven.query == make_url(url).query
    for other in ("sqlite:///runs/optuna.db", "postgresql+psycopg2://u@h/db"):
        assert with_driver(other) == other


def test_every_value_the_search_draws_is_one_set_would_accept():
    """The search space lies inside what `--set` accepts (the table's allowed values)."""
    from src.params import parse_override

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(300):
        trial = study.ask()
        for key, value in studies.suggest_params(trial).items():
            if key != "model":  # raises outside what the table allows
                assert parse_override(f"{key}={json.dumps(value)}", "cnn") == (key, value)
        study.tell(trial, 0.5)
