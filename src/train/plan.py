"""What a run will train, said before its first epoch: the models, their epochs and the images
they see in all (the time follows after the first epoch, `folds.TimeLeft`). On a CPU a run of
millions of images also names the faster ways."""

from __future__ import annotations

from src.config import Config

LONG_ON_A_CPU = 3_000_000  # images: more than the three-copy recipe trains on Kaggle's data


def images_to_train(cfg: Config, n_train: int, n_test: int) -> dict[str, int]:
    """Images each part of the run trains on, at most (early stopping may end folds sooner;
    the pseudo-label round adds at most every test digit)."""
    fold_rows = n_train - n_train // cfg.folds if cfg.folds else 0
    search = {"search": cfg.trials * cfg.search_folds * cfg.search_epochs * fold_rows}
    if cfg.mode == "search":  # a search worker trains nothing else
        return search
    return {
        **search,
        "folds": cfg.folds * cfg.epochs * fold_rows,
        "full fits": cfg.full_fits * cfg.epochs * n_train,
        "pseudo-label fits": cfg.pseudo_fits * cfg.epochs * (n_train + n_test),
    }


def count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' if n != 1 else ''}"


def plan_lines(cfg: Config, n_train: int, n_test: int, on_cpu: bool) -> list[str]:
    """The plan, a line or two: what trains, how many images in all; on a CPU, for a long run,
    the faster recipes and --on-kaggle."""
    parts = []
    if cfg.trials:
        parts.append(f"a search of up to {count(cfg.trials, 'trial')} ("
                     f"{count(cfg.search_folds, 'fold')}, {count(cfg.search_epochs, 'epoch')}"
                     " each)")  # fmt: skip
    counts = {"fold model": cfg.folds, "full fit": cfg.full_fits,
              "pseudo-label fit": cfg.pseudo_fits}  # fmt: skip
    models = [count(n, what) for what, n in counts.items() if n]
    if cfg.mode != "search":
        parts.append(f"{' + '.join(models)} of {count(cfg.epochs, 'epoch')}")
    total = sum(images_to_train(cfg, n_train, n_test).values())
    lines = [f"plan: {', then '.join(parts)}: at most {total:,} images to train"]
    if on_cpu and total > LONG_ON_A_CPU:
        lines.append("plan: a long run on a CPU; faster: --recipe quick or --recipe three (one"
                     " or three models, no search), or --on-kaggle to train on Kaggle's"
                     " GPU")  # fmt: skip
    return lines
