"""The command line -> a checked Config, every flag derived from Config's declarations.

A flag's names, help, group, type and allowed values come from its field in `src/config.py`;
a recipe (`--recipe NAME`: `recipes/NAME.flags`, or any file of flags) is read with the same
parser, and the flags typed on the command line override it. Every value and combination is
checked here, before anything is read or written; a problem exits 2 with one line.
"""

from __future__ import annotations

import argparse
import shlex
import typing
from dataclasses import fields
from datetime import datetime
from pathlib import Path

from src.config import MODES, ROOT, SETTINGS, Config, flag_of, mode_flag
from src.data.notebook import competition_data, kaggle_root
from src.params import Range, parse_override

USAGE = """Digit Recognizer end to end: validate the CSVs, search, train a k-fold CNN ensemble and
full-data models, write and check a submission.

    python run.py --recipe quick                      # one model on every row, no search
    python run.py --recipe three                      # three such models, averaged
    python run.py --folds 5                           # the default: search, 5 folds, 3 full fits
    python run.py --recipe quick --data-dir input/sample   # the bundled sample

Artifacts go to runs/<run-name>/ (the same --run-name resumes a run), the submission to
submissions/submission.csv. README.md explains every flag with examples.
"""
RECIPES = ROOT / "recipes"  # NAME.flags: the measured recipes, files of flags
D = Config()
TYPES = typing.get_type_hints(Config)


class Parser(argparse.ArgumentParser):
    """argparse, but a refusal is one line (no usage block), prefixed with where the flags came
    from when they came from a recipe file."""

    def __init__(self, *args, source: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source

    def error(self, message: str) -> typing.NoReturn:
        where = f"{self.source}: " if self.source else ""
        self.exit(2, f"error: {where}{message} (python run.py --help lists every flag)\n")


def value_type(name: str) -> type:
    """The type a flag's text converts to: the field's, without its None."""
    hint = TYPES[name]
    args = [t for t in typing.get_args(hint) if t is not type(None)]
    return args[0] if args else hint


def help_of(field) -> str:
    """The flag's help, with its default where it has one worth saying."""
    meta, default = field.metadata, field.default
    shown = meta["shown"] or (None if default in ("", None, False, ()) else default)
    return meta["help"] + (f" (default: {shown})" if shown is not None else "")


def build_parser(source: str = "") -> Parser:
    """The parser: one group per declared group, the modes mutually exclusive. A flag not typed
    is absent from the namespace (so a recipe's value can stand), never a default."""
    p = Parser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
               argument_default=argparse.SUPPRESS, source=source)  # fmt: skip
    modes = p.add_argument_group("mode (one at most; none: train)").add_mutually_exclusive_group()
    for mode, (spec, help) in MODES.items():
        flag, _, metavar = spec.partition(" ")
        if metavar:  # --report RUN_NAME: a mode with the run it reviews
            modes.add_argument(flag, metavar=metavar, dest=mode, help=help)
        elif flag:
            modes.add_argument(flag, dest="mode", action="store_const", const=mode, help=help)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in fields(Config):
        meta = field.metadata
        if not meta["flags"]:
            continue
        if meta["group"] not in groups:
            groups[meta["group"]] = p.add_argument_group(meta["group"])
        group = groups[meta["group"]]
        options: dict = {"dest": field.name, "help": help_of(field)}
        kind = value_type(field.name)
        if kind is bool:
            options["action"] = "store_true"
        elif field.name == "overrides":
            options.update(action="append", metavar=meta["metavar"])
        else:
            options.update(type=kind, metavar=meta["metavar"])
            if isinstance(meta["allowed"], tuple):
                options["choices"] = meta["allowed"]
                options.pop("metavar")
        group.add_argument(*meta["flags"], **options)
    return p


def read_recipe(name: str) -> dict:
    """A recipe's flags as parsed values: `recipes/NAME.flags`, or the file `name` names."""
    path = Path(name) if Path(name).suffix or "/" in name else RECIPES / f"{name}.flags"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.flags")))
        Parser().error(f"--recipe {name}: no such recipe ({path} is missing); the recipes are"
                       f" {known}, or give a file of flags")  # fmt: skip
    try:
        words = shlex.split(path.read_text(), comments=True)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        Parser().error(f"--recipe {name}: cannot read {path} ({e})")
    values = vars(build_parser(source=f"--recipe {name} ({path})").parse_args(words))
    for key in ("mode", *MODES, "recipe"):
        if key in values:
            Parser(source=f"--recipe {name} ({path})").error(
                "a recipe holds settings, not a mode or another recipe; give those on the"
                " command line"
            )
    return values


def check(cfg: Config) -> str | None:
    """Every value in its range and every combination of flags: the first problem, or None."""
    for name, field in SETTINGS.items():
        allowed, value = field.metadata["allowed"], getattr(cfg, name)
        if isinstance(allowed, Range) and value is not None and not allowed.holds(value):
            return f"{flag_of(name)}: expected {allowed}, got {value!r}"
    if cfg.folds == 1:
        return "--folds: one fold validates on every row it trained on; give 0 or K >= 2"
    if not cfg.folds and not cfg.full_fits:
        return "--folds 0 --full-fits 0 trains no model; give --full-fits N (N >= 1)"
    if not cfg.folds and cfg.trials:
        return ("--folds 0: the search validates its trials on folds; use --trials 0 (with"
                " --study-name NAME to train a finished study's best)")  # fmt: skip
    if cfg.trials and cfg.search_folds > cfg.folds:
        return (f"--search-folds {cfg.search_folds}: a trial validates on folds of --folds"
                f" {cfg.folds}; give at most {cfg.folds}")  # fmt: skip
    if cfg.mode == "search" and not cfg.trials:
        return "--search-only: needs trials to run; give --trials N"
    if cfg.trials and cfg.model != "cnn":
        return f"--trials: the search space is for --model cnn; use --trials 0 with {cfg.model}"
    if cfg.on_kaggle and cfg.mode not in ("train", "report"):
        return "--on-kaggle: trains a run, or with --report RUN fetches one; no other mode"
    if cfg.wait and not cfg.submit:
        return "--wait: waits for the score of a --submit; add --submit"
    if cfg.submit and cfg.mode not in ("train", "report"):
        return f"--submit: sends a run's submission; not with {mode_flag(cfg.mode)}"
    if Path(cfg.run_name).name != cfg.run_name or cfg.run_name.startswith("."):
        flag = mode_flag("report") if cfg.mode == "report" else flag_of("run_name")
        return f"{flag}: {cfg.run_name!r} must be a plain folder name (no '/' or leading '.')"
    return None


def places(values: dict) -> tuple[Path, Path, Path, str]:
    """(data dir, runs dir, submissions dir, notebook root): the flags, else the defaults, which
    inside a Kaggle notebook are its input and working folders."""
    given = {k: values[k] for k in ("data_dir", "runs_dir", "submissions_dir") if k in values}
    root = kaggle_root()
    if root is None:
        return (given.get("data_dir", D.data_dir), given.get("runs_dir", D.runs_dir),
                given.get("submissions_dir", D.submissions_dir), "")  # fmt: skip
    competition = values.get("competition", D.competition)
    data = given.get("data_dir") or competition_data(root, competition)
    if data is None:
        raise ValueError(
            f"in a Kaggle notebook: no folder with a train.csv under {root / 'input'}; add the"
            f" competition's data to the notebook (--competition {competition}) or give"
            " --data-dir"
        )
    working = root / "working"
    return (data, given.get("runs_dir", working / "runs"),
            given.get("submissions_dir", working), str(root))  # fmt: skip


def to_config(values: dict) -> Config:
    """Parsed values (a recipe's under the typed ones) -> Config; ValueError naming the flag."""
    values = dict(values)
    model = values.get("model", D.model)
    try:
        values["overrides"] = tuple(parse_override(t, model) for t in values.pop("overrides", []))
    except ValueError as e:
        raise ValueError(f"--set {e}") from None
    if "report" in values:
        if values.get("run_name", values["report"]) != values["report"]:
            raise ValueError("--report names the run itself; leave out --run-name")
        values.update(mode="report", run_name=values.pop("report"))
    data_dir, runs_dir, submissions_dir, notebook = places(values)
    values.update(data_dir=data_dir.resolve(), runs_dir=runs_dir.resolve(),
                  submissions_dir=submissions_dir.resolve(), notebook=notebook)  # fmt: skip
    if not values.get("run_name"):
        values["run_name"] = f"{model}-{datetime.now():%Y%m%d-%H%M%S}"
    return Config(**values)


def parse_args(argv: list[str] | None = None) -> Config:
    """Command line (and its recipe) -> a checked Config; exit 2 with one line if refused."""
    p = build_parser()
    given = vars(p.parse_args(argv))
    recipe = read_recipe(given["recipe"]) if "recipe" in given else {}
    if recipe.get("overrides") and given.get("overrides"):  # --set: the recipe's, then typed
        given["overrides"] = recipe["overrides"] + given["overrides"]
    try:
        cfg = to_config({**recipe, **given})
    except ValueError as e:
        p.error(str(e))
    problem = check(cfg)
    if problem:
        p.error(problem)
    return cfg


def command_flags(cfg: Config, names: list[str]) -> list[str]:
    """The flags that give `cfg`'s values of the settings `names`, as run.py takes them back: a
    switch only when on, a None left out, each --set pair on its own."""
    import json

    out: list[str] = []
    for name in names:
        value, flag = getattr(cfg, name), flag_of(name)
        if name == "overrides":
            out += [w for key, v in value for w in (flag, f"{key}={json.dumps(v)}")]
        elif isinstance(value, bool):
            out += [flag] if value else []
        elif value is not None:
            out += [flag, str(value)]
    return out


def remote_settings() -> list[str]:
    """The settings a Kaggle notebook's run.py is given (declared `remote`), by field name."""
    return [name for name, f in SETTINGS.items() if f.metadata["remote"]]


def flags_table() -> str:
    """The README's flags table, in Markdown, from the declarations (tests/test_docs.py holds
    the README to it)."""
    cells = [("mode", f"`{spec}`", help) for spec, help in MODES.values() if spec]
    for field in fields(Config):
        meta = field.metadata
        if not meta["flags"]:
            continue
        names = ", ".join(f"`{f}`" for f in meta["flags"])
        if isinstance(meta["allowed"], tuple):
            choices = "\\|".join(meta["allowed"])  # a | inside a table cell is escaped
            names = f"`{meta['flags'][0]} {choices}`"
        elif meta["metavar"]:
            names = ", ".join(f"`{f} {meta['metavar']}`" for f in meta["flags"])
        cells.append((meta["group"], names, help_of(field).replace("|", "&#124;")))
    rows = ["| group | flag | meaning (default) |", "| --- | --- | --- |"]
    for i, (group, names, help) in enumerate(cells):  # a group named on its first row only
        shown = group if i == 0 or cells[i - 1][0] != group else ""
        rows.append(f"| {shown} | {names} | {help} |")
    return "\n".join(rows)
