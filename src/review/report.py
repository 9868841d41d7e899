"""The run's review page: figures plus report.html, built from the run folder alone.

`build_report(run_dir)` reads only what a finished run saved (summary.json, config.json, each
fold's history.json, ensemble.npz, the study's files when it searched), so `run.py --report RUN`
rebuilds the page without data, TensorFlow or training. The page links its PNGs relatively:
the run folder can be moved or zipped whole and still opens in a browser.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from src import UserError
from src.outputs.files import read_json, show, write_html
from src.outputs.submission import describe_diff
from src.review import figures as report_figures
from src.review.summary import ensemble_of

GALLERY = 32  # most confidently wrong out-of-fold digits shown


def _load(run_dir: Path) -> dict:
    needed = ["summary.json", "config.json", "ensemble.npz"]
    missing = [name for name in needed if not (run_dir / name).exists()]
    if missing:
        raise UserError(
            f"{show(run_dir)}: no finished run there ({', '.join(missing)} missing); --report"
            " takes the name of a run folder whose run ended (see runs/)"
        )
    summary = read_json(run_dir / "summary.json")
    with np.load(run_dir / "ensemble.npz") as z:
        arrays = {key: z[key] for key in z.files}
    if not {"y_train", "wrong_rows", "wrong_images"} <= arrays.keys():
        raise UserError(
            f"{show(run_dir)}: made by an earlier version that did not save what the report"
            " needs; rerun it (finished folds are reused) to get its report"
        )
    # The folds' curves (validated); a run without folds shows its full fits' training curves.
    models = [(f"fold {f['fold']}", f"fold_{f['fold']}") for f in summary["folds"]] or [
        (f"full fit {f['fit']}", f"full_{f['fit']}") for f in summary["full_fits"]
    ]
    histories = {label: read_json(run_dir / name / "history.json") for label, name in models}
    study = read_json(run_dir / "study.json") if (run_dir / "study.json").exists() else None
    return dict(summary=summary, config=read_json(run_dir / "config.json"),
                histories=histories, study=study, **arrays)  # fmt: skip


def make_figures(run: dict, run_dir: Path) -> dict[str, str]:
    """Write the report's PNGs; returns {figure: file name}."""
    classes = run["classes"]  # class indices -> the competition's labels
    labels = classes[run["y_train"]]
    figures = {
        "learning_curves": report_figures.learning_curves(
            run["histories"], run_dir / "report_learning_curves.png"
        ),
        "test_classes": report_figures.class_distribution(
            classes[run["test_proba"].argmax(axis=1)],
            labels,
            classes,
            run_dir / "report_test_classes.png",
        ),  # fmt: skip
    }
    if "oof_proba" not in run:  # --folds 0: no out-of-fold predictions to judge
        return figures
    oof = run["oof_proba"]
    predicted = classes[oof.argmax(axis=1)]
    rows = run["wrong_rows"][:GALLERY]
    figures["confusion_matrix"] = report_figures.confusion_matrix(
        labels, predicted, run_dir / "report_confusion_matrix.png"
    )
    figures["wrong_gallery"] = report_figures.wrong_gallery(
        run["wrong_images"][:GALLERY],
        labels[rows],
        predicted[rows],
        oof[rows].max(axis=1),
        rows,
        run_dir / "report_wrong_gallery.png",
    )
    return figures


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(name: str, caption: str) -> str:
    return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def _errors(run: dict, figures: dict[str, str]) -> list[str]:
    """The out-of-fold mistakes: how many, the most confident ones, the confusion matrix."""
    n_wrong = len(run["wrong_rows"])
    return [
        "<h2>Out-of-fold errors</h2>",
        f"<p>{n_wrong} of {len(run['y_train'])} training digits wrong out of fold; the"
        f" {min(n_wrong, GALLERY)} most confident mistakes (row of train.csv counted from 0,"
        " true → predicted, confidence):</p>",
        _figure(figures["wrong_gallery"], "most confidently wrong out-of-fold digits"),
        f"<p class=rows>rows shown: {', '.join(map(str, run['wrong_rows'][:GALLERY]))}</p>",
        _figure(figures["confusion_matrix"], "confusion matrix (out of fold)"),
    ]


def _kaggle(entry: dict | None) -> list[str]:
    """What Kaggle said of the run's submission, if it was submitted."""
    if not entry:
        return []
    esc = html.escape
    public, private = entry.get("public_score"), entry.get("private_score")
    score = "not scored yet" if public is None else f"public score <b>{public:.5f}</b>"
    if private is not None:
        score += f", private score {private:.5f}"
    if entry.get("status") == "failed":
        score = "Kaggle could not score it"
    sent = f"submitted {esc(entry['submitted'])} as <code>{esc(entry['file'])}</code>"
    return [f"<p>Kaggle ({esc(entry['competition'])}): {sent}, “{esc(entry['message'])}”:"
            f" {score}.</p>"]  # fmt: skip


def _where(trained_on: dict | None) -> list[str]:
    """Where a run fetched with --on-kaggle trained."""
    if not trained_on:
        return []
    esc = html.escape
    return [
        f"<p>Trained as the Kaggle notebook <code>{esc(trained_on['kaggle_kernel'])}</code>"
        f" (version {trained_on['version']}) on {esc(trained_on['device'] or 'Kaggle')}.</p>"
    ]


def render(run: dict, figures: dict[str, str], run_dir: Path) -> tuple[str, str]:
    """The page's body and style: headline numbers, fold table, figures, study, command and
    config."""
    s = run["summary"]
    esc = html.escape
    test = "—" if s["test_accuracy"] is None else f"{s['test_accuracy']:.4f}"
    folds = _table(
        ["fold", "val accuracy", "best epoch", "epochs", "seconds"],
        [[f["fold"], f"{f['accuracy']:.4f}", f["best_epoch"], f["epochs"], f"{f['seconds']:.0f}"]
         for f in s["folds"]],
    )  # fmt: skip
    oof = "—" if s["oof_accuracy"] is None else f"{s['oof_accuracy']:.4f}"
    parts = [
        f"<h1>{esc(run_dir.name)}</h1>",
        f"<p class=cmd><code>{esc(s.get('command', ''))}</code></p>",
        *_where(s.get("trained_on")),
        _table(
            ["out-of-fold accuracy", "test accuracy (solution.csv)", "wall time", "submission"],
            [[oof, test, f"{s['seconds']:.0f} s", s.get("submission", "")]],
        ),
        f"<p>Submission check: {esc(describe_diff(s.get('previous_diff')))}.</p>",
        *_kaggle(s.get("kaggle")),
        *(["<h2>Folds</h2>", folds,
           f"<p>The submission averages {esc(ensemble_of(s))}; the folds' out-of-fold accuracy"
           " estimates one model's accuracy on unseen digits.</p>"] if s["folds"] else
          ["<h2>Models</h2>",
           f"<p>No folds (<code>--folds 0</code>): the submission averages {esc(ensemble_of(s))},"
           " and no training digit was held out, so nothing estimates its accuracy on unseen"
           " digits; <code>--folds K</code> does.</p>"]),
        _table(["full fit", "epochs", "seconds"],
               [[f["fit"], f["epochs"], f"{f['seconds']:.0f}"] for f in s.get("full_fits", [])])
        if s.get("full_fits") else "",
        "<h2>Learning curves</h2>",
        _figure(figures["learning_curves"], "loss, accuracy and learning rate per epoch"),
        *(_errors(run, figures) if "oof_proba" in run else []),
        "<h2>Test predictions</h2>",
        _figure(figures["test_classes"], "class distribution of the test predictions"),
    ]  # fmt: skip
    if run["study"]:
        st = run["study"]
        best = ""
        if "best_trial" in st:
            best = f", best trial #{st['best_trial']}: {st['best_value']:.4f}"
        parts += [
            "<h2>Optuna study</h2>",
            f"<p>study {esc(st['study'])}: {st['complete']} complete, {st['pruned']} pruned,"
            f" {st['failed']} failed{esc(best)}</p>",
            *[_figure(p.name, p.stem.removeprefix("study_").replace("_", " "))
              for p in sorted(run_dir.glob("study_*.png"))],
        ]  # fmt: skip
    config = json.dumps(run["config"], indent=2, sort_keys=True)
    parts += ["<h2>Configuration</h2>", f"<pre>{esc(config, quote=False)}</pre>"]
    style = (
        "body{max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:.3em .7em;text-align:right}img{max-width:100%}figure{margin:1em 0}"
        "figcaption{color:#555}pre,.cmd{background:#f6f6f6;padding:.6em}"
    )
    return "\n".join(parts), style


def build_report(run_dir: Path) -> Path:
    """Write the report's PNGs and report.html into `run_dir`; return the page's path."""
    run = _load(run_dir)
    figures = make_figures(run, run_dir)
    body, style = render(run, figures, run_dir)
    return write_html(run_dir / "report.html", run_dir.name, body, style)
