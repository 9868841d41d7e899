"""The command line as declared once (src/config.py): recipes under typed flags, modes, the plan,
and flags written in one place only."""

from __future__ import annotations

import re
from dataclasses import fields, replace

import pytest

import run
from src.cli import flags_table, parse_args
from src.config import MODES, ROOT, SETTINGS, Config
from src.train.plan import plan_lines

QUICK = ["--folds", "0", "--full-fits", "1", "--epochs", "18", "--trials", "0"]


def without_recipe(cfg: Config) -> Config:
    return replace(cfg, recipe="")


def test_each_recipe_is_the_settings_it_names():
    """quick and three are the measured commands; default is what no flag at all gives (its
    file written out to copy, held here to the declarations)."""
    name = ["--run-name", "r"]
    assert without_recipe(parse_args(["--recipe", "quick", *name])) == parse_args([*QUICK, *name])
    three = [*QUICK[:2], "--full-fits", "3", *QUICK[4:]]
    assert without_recipe(parse_args(["--recipe", "three", *name])) == parse_args([*three, *name])
    assert without_recipe(parse_args(["--recipe", "default", *name])) == parse_args(name)
    assert parse_args(["--recipe", "quick"]).recipe == "quick"


def test_flags_typed_override_the_recipe_and_set_adds_to_its_own(tmp_path):
    mine = tmp_path / "mine.flags"
    mine.write_text("# a user's copy of quick, edited\n--folds 0 --full-fits 2  # two copies\n"
                    "--epochs 9\n--trials 0\n--set dropout=0.3 --set filters=16\n")  # fmt: skip
    cfg = parse_args(["--recipe", str(mine), "--epochs", "4", "--set", "filters=8"])
    assert (cfg.folds, cfg.full_fits, cfg.epochs, cfg.trials) == (0, 2, 4, 0)
    assert dict(cfg.overrides) == {"dropout": 0.3, "filters": 8}  # typed --set wins its key
    assert cfg.recipe == str(mine)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("--runs\n", "a recipe holds settings, not a mode"),
        ("--recipe quick\n", "not a mode or another recipe"),
        ("--epochs many\n", "argument --epochs: invalid int value: 'many'"),
    ],
)  # fmt: skip
def test_a_bad_recipe_is_one_line_naming_its_file(tmp_path, capsys, text, fragment):
    bad = tmp_path / "bad.flags"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--recipe", str(bad)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.strip().splitlines() == [err.strip()]
    assert f"--recipe {bad} ({bad})" in err and fragment in err


def test_one_mode_at_most_and_the_mode_is_one_value():
    assert parse_args([]).mode == "train"
    assert parse_args(["--search-only"]).mode == "search"
    assert (parse_args(["--report", "r"]).mode, parse_args(["--report", "r"]).run_name) == (
        "report",
        "r",
    )
    assert parse_args(["--scores"]).mode == "scores" and parse_args(["--runs"]).mode == "runs"
    for mode, on_kaggle in [(m, k) for m in MODES for k in (False, True)]:
        allowed = on_kaggle is False or mode in ("train", "report")
        assert ((mode, on_kaggle) in run.COMMANDS) == allowed  # one dispatch, every pair


def test_the_plan_names_the_models_and_images_and_on_a_cpu_the_faster_ways():
    kaggle = (42_000, 28_000)
    default = parse_args(["--run-name", "r"])
    lines = plan_lines(default, *kaggle, on_cpu=True)
    assert lines[0].startswith("plan: a search of up to 20 trials")
    assert "5 fold models + 3 full fits of 30 epochs" in lines[0]
    searched = 20 * 1 * 10 * 33_600  # each trial trains on 4 of 5 folds
    trained = 5 * 30 * 33_600 + 3 * 30 * 42_000
    assert f"at most {searched + trained:,} images to train" in lines[0]
    assert "--recipe quick" in lines[1] and "--on-kaggle" in lines[1]
    assert len(plan_lines(default, *kaggle, on_cpu=False)) == 1  # a GPU: no advice
    quick = parse_args(["--recipe", "quick"])
    assert plan_lines(quick, *kaggle, on_cpu=True) == [
        f"plan: 1 full fit of 18 epochs: at most {18 * 42_000:,} images to train"
    ]


def test_each_flag_is_written_once_in_the_code():
    """A flag's name lives in its declaration; code derives it (`flag_of`), never retypes it."""
    code = "\n".join(p.read_text() for p in [ROOT / "run.py", *(ROOT / "src").rglob("*.py")])
    flags = [f for field in fields(Config) for f in field.metadata["flags"] if f[:2] == "--"]
    flags += [spec.split()[0] for spec, _ in MODES.values() if spec]
    assert "--patience" in flags and len(flags) > 30
    written = {f: len(re.findall(f'"{re.escape(f)}"', code)) for f in flags}
    assert {f: n for f, n in written.items() if n > 1} == {}


def test_the_readme_flags_table_is_the_declarations():
    """Every flag and its help, as --help gives them, in the README's table (regenerate it with
    `python -c "from src.cli import flags_table; print(flags_table())"`)."""
    table = flags_table()
    for field in SETTINGS.values():
        for flag in field.metadata["flags"]:
            assert f"`{flag}" in table, flag
    assert table in (ROOT / "README.md").read_text()
