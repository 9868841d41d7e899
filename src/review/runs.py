"""`--runs`: every run folder at a glance, best out-of-fold accuracy first, printed and written
as runs/index.html with a link to each run's page and, once two or more runs have a public
score, a plot of out-of-fold accuracy against it: does the cross-validation track the
leaderboard? A folder that is not a finished run shows as what it is, never as a traceback.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

from src.config import Config
from src.outputs.files import pyplot, read_json, show, write_html, write_png


def describe(run_dir: Path) -> dict:
    """One row: what the run folder holds, or why it is not a finished run."""
    row = {"name": run_dir.name, "date": "", "oof": None, "public": None, "state": ""}
    try:
        summary = read_json(run_dir / "summary.json")
        config = read_json(run_dir / "config.json")
        settings, params = config["settings"], config["params"]
        row["date"] = datetime.fromtimestamp((run_dir / "summary.json").stat().st_mtime)
        kaggle = summary.get("kaggle") or {}
        row.update(
            model=params.get("model", settings.get("model", "?")),
            models=f"{len(summary['folds'])}+{len(summary.get('full_fits', []))}",
            epochs=settings.get("epochs"),
            oof=summary.get("oof_accuracy"),
            test=summary.get("test_accuracy"),
            submitted="yes" if kaggle else "no",
            public=kaggle.get("public_score"),
            seconds=summary.get("seconds"),
            state="finished",
        )
    except FileNotFoundError as e:
        has_models = any(run_dir.glob("*/predictions.npz"))
        row["state"] = f"unfinished ({Path(e.filename).name} missing" + (
            ", some models trained: rerun with its --run-name)" if has_models else ")"
        )
    except (ValueError, KeyError, TypeError) as e:
        row["state"] = f"broken ({type(e).__name__}: {str(e)[:60]})"
    return row


def _cell(value, fmt: str = "{}") -> str:
    return "—" if value is None or value == "" else fmt.format(value)


def rows_of(runs_dir: Path) -> list[dict]:
    """Every run folder's row, finished runs by out-of-fold accuracy (best first), then the
    rest by name. Hidden folders (`.jax-cache`) are not runs."""
    folders = [d for d in sorted(runs_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    rows = [describe(d) for d in folders]
    return sorted(rows, key=lambda r: (r["state"] != "finished", -(r["oof"] or 0), r["name"]))


COLUMNS = ["run", "date", "model", "folds+full", "epochs", "OOF", "solution.csv", "submitted",
           "public", "wall"]  # fmt: skip


def table_row(r: dict) -> list[str]:
    if r["state"] != "finished":
        return [r["name"], r["state"]]
    return [r["name"], f"{r['date']:%Y-%m-%d %H:%M}", str(r["model"]), r["models"],
            _cell(r["epochs"]), _cell(r["oof"], "{:.4f}"), _cell(r["test"], "{:.4f}"),
            r["submitted"], _cell(r["public"], "{:.5f}"),
            _cell(r["seconds"], "{:.0f} s")]  # fmt: skip


def show_runs(cfg: Config) -> None:
    """Print the table and write runs/index.html (and its plot)."""
    if not cfg.runs_dir.is_dir():
        print(f"runs: {show(cfg.runs_dir)} does not exist yet; a run creates it")
        return
    rows = rows_of(cfg.runs_dir)
    lines = [table_row(r) for r in rows]
    widths = [max([len(c), *(len(cells[i]) for cells in lines if len(cells) > i)])
              for i, c in enumerate(COLUMNS)]  # fmt: skip
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for cells in lines:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)))
    page = write_index(cfg.runs_dir, rows)
    print(f"index: {show(page)}")


def write_index(runs_dir: Path, rows: list[dict]) -> Path:
    """runs/index.html: the table, each run linked to its page, and the OOF-vs-public plot."""
    esc = html.escape
    body = []
    for r in rows:
        cells = table_row(r)
        link = runs_dir / r["name"] / "report.html"
        name = (f'<a href="{esc(r["name"])}/report.html">{esc(r["name"])}</a>' if link.exists()
                else esc(r["name"]))  # fmt: skip
        tds = [name, *(esc(c) for c in cells[1:])]
        span = f' colspan="{len(COLUMNS) - 1}"' if len(cells) == 2 else ""
        body.append("<tr>" + "".join(f"<td{span if i == 1 else ''}>{c}</td>"
                                     for i, c in enumerate(tds)) + "</tr>")  # fmt: skip
    scored = [r for r in rows if r["oof"] is not None and r["public"] is not None]
    plot = ""
    if len(scored) >= 2:
        plot_oof_vs_public(scored, runs_dir / "index_oof_vs_public.png")
        img = '<img src="index_oof_vs_public.png" alt="OOF accuracy against public score">'
        plot = f"<h2>Out-of-fold accuracy against the public score</h2>{img}"
    table = ("<h1>Runs</h1><table><tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
             + "".join(body) + "</table>")  # fmt: skip
    style = "td,th{padding:2px 10px;text-align:left}"
    return write_html(runs_dir / "index.html", "runs", table + plot, style)


def plot_oof_vs_public(rows: list[dict], path: Path) -> None:
    """Each submitted run as a point: out-of-fold accuracy across, public score up."""
    fig, ax = pyplot().subplots(figsize=(6, 4.5))
    ax.scatter([r["oof"] for r in rows], [r["public"] for r in rows])
    for r in rows:
        ax.annotate(r["name"], (r["oof"], r["public"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("out-of-fold accuracy")
    ax.set_ylabel("public score")
    fig.tight_layout()
    write_png(fig, path)
