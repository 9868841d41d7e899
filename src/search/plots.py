"""The Optuna study's plots as PNGs in the run folder, for review after a search."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from src.outputs.files import pyplot, write_png

plt = pyplot()  # before Optuna's matplotlib plots import pyplot

import optuna.visualization.matplotlib as ovm  # noqa: E402


def _top_two(study: optuna.Study) -> list[str] | None:
    importances = optuna.importance.get_param_importances(study)
    return list(importances)[:2] if len(importances) >= 2 else None


PLOTS = {
    "optimization_history": lambda s: ovm.plot_optimization_history(s),
    "param_importances": lambda s: ovm.plot_param_importances(s),
    "parallel_coordinate": lambda s: ovm.plot_parallel_coordinate(s),
    "slice": lambda s: ovm.plot_slice(s),
    "contour": lambda s: ovm.plot_contour(s, params=_top_two(s)),
    "intermediate_values": lambda s: ovm.plot_intermediate_values(s),
    "timeline": lambda s: ovm.plot_timeline(s),
}


def save_study_plots(study: optuna.Study, out_dir: Path) -> dict[str, str]:
    """Write each plot as out_dir/study_<name>.png; returns {name: file or reason skipped}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for name, plot in PLOTS.items():
        needs = 2 if name in ("param_importances", "contour") else 1
        if len(complete) < needs:
            written[name] = (
                f"skipped: needs {needs} complete trials, the study has {len(complete)}"
            )
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" notices and matplotlib's limits
                ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # too few distinct values
            written[name] = f"skipped: {str(e).splitlines()[0]}"
            plt.close("all")
            continue
        fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
        written[name] = write_png(fig, out_dir / f"study_{name}.png")
        plt.close("all")
    return written
