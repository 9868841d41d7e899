"""The search's worker loop: run trials of a (shared) study until it holds its target.

A trial trains on K-1 folds and validates on one (`search_folds` of them, each cheaper than the
final training: `search_epochs` epochs), reporting validation accuracy per epoch to the pruner.
Each trial runs in a fresh process (`src/search/trial.py` says why); any number of workers
(processes, machines) can share one study (`src/search/study.py`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import time
import warnings

import optuna
from tqdm.auto import tqdm

from src.config import Config
from src.data.load import Digits
from src.outputs.files import mask_secrets
from src.search.study import FINISHED, count, open_study, worker_id

POLL_S = 2  # how often a worker looks again while other workers finish the last trials


def run_search(cfg: Config, data: Digits, pruner=None) -> optuna.Study:
    """Run trials until the study holds `cfg.trials` finished (complete or pruned) trials.

    Any number of workers (processes, machines) may run this against one study: a worker starts
    a trial only while finished + running trials are below the target, and when the remaining
    slots are other workers' running trials it waits for them, taking a slot over if that trial
    fails or its worker dies. Each trial also checks the cap once it holds its trial number
    (`trial.Objective.check_cap`), so workers racing for the last slot cannot overshoot.
    """
    target = cfg.trials
    study = open_study(cfg, create=True, pruner=pruner)
    done = count(study)
    print(
        f"search: study {cfg.study!r} in {mask_secrets(cfg.storage_url)}: {done} finished"
        f" trials, {max(0, target - done)} to go (the target {target} is the study's total over"
        " all workers)",
        flush=True,
    )
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited TF state
    me = worker_id(os.getpid())
    children: list[multiprocessing.process.BaseProcess] = []
    start, attempts, stopping, waiting = time.monotonic(), 0, False, False
    with tqdm(total=target, initial=min(done, target), desc="trials", unit="trial") as bar:
        while True:
            for child in [c for c in children if not c.is_alive()]:
                children.remove(child)
                if child.exitcode:
                    tqdm.write(f"search: a trial process exited with code {child.exitcode}")
            now = Tally(study.get_trials(deepcopy=False), me)  # one read of the study per poll
            now.show(bar, target)
            # Like Optuna's own timeout, it stops new trials only: this worker runs at least one.
            late = cfg.timeout and time.monotonic() - start > cfg.timeout
            if late and attempts and not stopping:
                tqdm.write(f"search: --timeout {cfg.timeout:g} s reached; no new trials")
                stopping = True
            # Children still importing have no trial yet: count them as taking a slot.
            open_slots = target - now.taken - (len(children) - now.mine_running)
            can_start = not stopping and attempts < target - done  # failures use up attempts
            if can_start and open_slots > 0 and len(children) < cfg.n_jobs:
                child = spawn.Process(target=trial_process, args=(cfg, data, pruner, me))
                child.start()
                children.append(child)
                attempts += 1
                continue
            if not children:
                if now.finished >= target or not can_start:
                    break
                if not waiting:  # the last slots are other workers' running trials
                    tqdm.write("search: waiting for the trials other workers are running")
                    waiting = True
                with warnings.catch_warnings():  # "experimental" since Optuna 2.9, like heartbeats
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # a dead worker's trial frees a slot
            if children:  # back as soon as one of them ends
                multiprocessing.connection.wait([c.sentinel for c in children], timeout=POLL_S)
            else:
                time.sleep(POLL_S)
        Tally(study.get_trials(deepcopy=False), me).show(bar, target)
    return study


class Tally:
    """What a worker needs to know of the study, from one read of its trials."""

    def __init__(self, trials: list[optuna.trial.FrozenTrial], worker: str):
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        self.finished = sum(t.state in FINISHED for t in trials)
        self.taken = self.finished + len(running)  # what counts against the cap
        self.mine_running = sum(t.user_attrs.get("worker") == worker for t in running)
        self.best = max(complete, key=lambda t: t.value, default=None)  # the study maximises

    def show(self, bar: tqdm, target: int) -> None:
        """The bar counts finished trials, every worker's, and shows the best so far; redrawn
        only when either changed (a log file gets a line per redraw)."""
        best = None if self.best is None else (f"{self.best.value:.4f}", self.best.number)
        if (bar.n, getattr(bar, "best", None)) == (min(self.finished, target), best):
            return
        bar.n, bar.best = min(self.finished, target), best
        if best is not None:
            bar.set_postfix(best=best[0], trial=best[1], refresh=False)
        bar.refresh()


def trial_process(cfg: Config, data: Digits, pruner, worker: str) -> None:
    """The body of a trial process (started with `spawn`): Keras loads only here, with
    TensorFlow's native start-up log filtered; this module stays free of Keras at import time,
    since the new interpreter imports it to find this target."""
    from src.train.quiet import import_keras

    import_keras()
    from src.search.trial import run_trials

    run_trials(cfg, data, pruner, worker)
