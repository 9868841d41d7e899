"""`--report RUN`: rebuild a finished run's page from its folder; with `--submit`, check that
run's own submission again and send it."""

from __future__ import annotations

import time

from src.config import Config
from src.errors import UserError
from src.files import show


def review(cfg: Config) -> None:
    """--report RUN: rebuild the run's page; with --submit, check and submit its submission."""
    from src.report import build_report

    start = time.perf_counter()
    page = build_report(cfg.run_dir)
    print(f"report: {show(page)} (built in {time.perf_counter() - start:.1f} s)")
    if cfg.submit:
        submit_run(cfg)


def submit_run(cfg: Config) -> None:
    """Submit the run-named copy of a finished run's submission, checked again first."""
    import numpy as np
    import pandas as pd

    from src.files import read_json
    from src.kaggle_submit import submit
    from src.submission import check_submission, compare_with_previous, describe_diff
    from src.summary import headline

    path = cfg.submissions_dir / f"{cfg.run_name}.csv"
    if not path.exists():
        raise UserError(f"{show(path)}: no such file; --report --submit sends a run's own copy")
    with np.load(cfg.run_dir / "ensemble.npz") as z:
        n_test = len(z["test_proba"])
    try:
        sub = pd.read_csv(path)
        check_submission(sub, n_test, None)
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{show(path)}: not a valid submission ({e}); rerun the run") from None
    latest = cfg.submissions_dir / "submission.csv"
    print(f"submission check: {describe_diff(compare_with_previous(sub, latest))}")
    summary = read_json(cfg.run_dir / "summary.json")
    submit(path, cfg.message or f"{cfg.run_name}: {headline(summary)}", cfg.competition)
