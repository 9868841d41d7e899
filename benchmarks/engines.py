"""The two training engines side by side: throughput, and what a run with each scored.

    python -m benchmarks.engines throughput [--data-dir DIR] [--rows 42000] [--models 1 8]
        [--epochs 3] [--precisions float32 mixed_bfloat16] [--engines sequential batched]
        [--convs matmul native] [--jobs full run] [--tails on off]
    python -m benchmarks.engines cut --data-dir DIR --rows 640 --test-rows 200 --out DIR
    python -m benchmarks.engines report RUN_DIR [RUN_DIR ...]
    python -m benchmarks.engines compiles LOG

`throughput` trains K full-data models of the default recipe on `--data-dir`'s train.csv (the
competition's files, or the bundled sample repeated to `--rows`; nothing held out, so every
model works every step) with each engine and precision, in one process, and prints the
images/s of the epochs after the first (the first holds the compile) and the first epoch's
seconds: `RESULT engine=batched models=8 precision=float32 images_s=... first_epoch_s=...`.
The sequential engine trains one model (K models take K times as long). `--jobs run` trains
the default run's models instead (5 fold models, each validated on its fold every epoch, and 3
full fits: `models=8`), with the epoch's tail as a program of the full fits alone or not
(`--tails on off`); its images/s count the images the models train on.

`cut` writes the first rows of a data folder's train.csv, test.csv and sample_submission.csv:
a small real data set for dry runs of `gpu_suite.sh`; `report` prints each run folder's engine,
precision, OOF and answer-key accuracy, wall time (summary.json's seconds: from the data
check to the submission, the report not included) and, for the batched engine, where it went:
the first epoch (compile included), the median of the others, building the models (`setup_s`),
all epochs, and predicting with and saving the finished models (`handover_s`), as RESULT lines;
`compiles` sums the XLA compilations a run logged with `JAX_LOG_COMPILES=1`: how many, how
many were loaded from the compile cache, their seconds, and the costliest programs.
Measured numbers: benchmarks/README.md, "Engines".
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from src.config import ROOT

SAMPLE = ROOT / "input" / "sample"


def cut(data_dir: Path, rows: int, test_rows: int, out: Path) -> None:
    """The first `rows` training and `test_rows` test rows of `data_dir`'s CSVs, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", rows), ("test", test_rows), ("sample_submission", test_rows)):
        found = sorted(data_dir.glob(f"{name}.csv*"))
        if found:
            pd.read_csv(found[0], nrows=n).to_csv(out / f"{name}.csv", index=False)
    print(f"wrote {out}/train.csv ({rows} rows), test.csv ({test_rows} rows)")


def throughput(args) -> None:
    import keras

    from src.data.load import load_digits
    from src.params import default_params
    from src.train.device import accelerator
    from src.train.engine import Job
    from src.train.engines import make_engine
    from src.train.folds import fold_jobs, full_fit_jobs

    data = load_digits(args.data_dir)
    rows = args.rows or len(data.y_train)
    index = np.arange(rows) % len(data.y_train)  # the sample: repeated to --rows
    data.x_train, data.y_train = data.x_train[index], data.y_train[index]
    params = default_params("cnn")
    print(f"device: {accelerator() or 'CPU'} ({keras.backend.backend()}), {rows} rows,"
          f" batch {params['batch_size']} per model", flush=True)  # fmt: skip
    run_jobs = fold_jobs(data.y_train, 5, 0) + full_fit_jobs(rows, 3, 0)
    for engine_name, layout in itertools.product(args.engines, args.jobs):
        batched = engine_name == "batched"
        if layout == "run" and not batched:
            continue  # the sequential engine's run is its models one after another
        for precision in args.precisions:
            for k, conv, tail in itertools.product(
                [len(run_jobs)] if layout == "run" else args.models if batched else [1],
                args.convs if batched else ["native"],
                args.tails if layout == "run" else ["-"],
            ):
                keras.mixed_precision.set_global_policy(precision)
                engine = make_engine(engine_name, params, data, epochs=args.epochs,
                                     patience=args.epochs, augment="affine", verbose=0,
                                     predict_test=False)  # fmt: skip
                engine.unroll, engine.conv, engine.tail = args.unroll, conv, tail != "off"
                jobs = run_jobs if layout == "run" else [
                    Job("full", i + 1, np.arange(rows), None, 100 + i) for i in range(k)
                ]  # fmt: skip
                ends = [time.perf_counter()]

                def clock(i, epoch, logs, ends=ends):
                    if i == 0:
                        ends.append(time.perf_counter())

                engine.train(jobs, lambda _: None, on_epoch=clock)
                epochs = np.diff(ends)
                batch = params["batch_size"]
                images = sum(-(-len(j.train_rows) // batch) * batch for j in jobs)
                rate = images / float(np.median(epochs[1:]))
                print(f"RESULT engine={engine_name} models={k} precision={precision}"
                      f" unroll={args.unroll} conv={conv} jobs={layout} tail={tail}"
                      f" images_s={rate:.0f} first_epoch_s={epochs[0]:.1f}"
                      f" epoch_s={float(np.median(epochs[1:])):.2f}",
                      flush=True)  # fmt: skip
    keras.mixed_precision.set_global_policy("float32")


def report(run_dirs: list[Path]) -> None:
    for run in run_dirs:
        try:
            summary = json.loads((run / "summary.json").read_text())
        except OSError as e:
            print(f"RESULT run={run.name} missing ({e.strerror})")
            continue
        engine = summary.get("engine", {})
        oof, test = summary.get("oof_accuracy"), summary.get("test_accuracy")
        print(
            f"RESULT run={run.name} engine={engine.get('name')} models={engine.get('models')}"
            f" precision={summary.get('precision')}"
            f" oof={'none' if oof is None else f'{oof:.4f}'}"
            f" test={'none' if test is None else f'{test:.4f}'}"
            f" wall_s={summary['seconds']:.1f} first_epoch_s={_s(engine.get('first_epoch_s'))}"
            f" median_epoch_s={_s(engine.get('median_epoch_s'))}"
            f" setup_s={_s(engine.get('setup_s'))} epochs_s={_s(engine.get('epochs_s'))}"
            f" handover_s={_s(engine.get('handover_s'))}"
        )


def _s(seconds) -> str:
    return "none" if seconds is None else f"{seconds:.2f}"


def compiles(log: Path) -> None:
    """One RESULT line from the "Finished XLA compilation of NAME in S sec" lines of `log`."""
    pattern = re.compile(r"Finished XLA compilation of (\S+) in ([0-9.e-]+) sec")
    seconds: dict[str, float] = {}
    count = hits = 0
    for line in log.read_text(errors="replace").splitlines():
        hits += "Persistent compilation cache hit" in line
        if found := pattern.search(line):
            count += 1
            name = found.group(1)
            seconds[name] = seconds.get(name, 0.0) + float(found.group(2))
    top = sorted(seconds.items(), key=lambda item: -item[1])[:5]
    print(
        f"RESULT log={log.name} compiles={count} cache_hits={hits}"
        f" compile_s={sum(seconds.values()):.1f} top="
        + ",".join(f"{name}:{s:.1f}" for name, s in top)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--data-dir", type=Path, default=SAMPLE)
    t.add_argument("--rows", type=int, default=None, help="default: every row of --data-dir")
    t.add_argument("--models", type=int, nargs="+", default=[1, 8])
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    t.add_argument("--engines", nargs="+", default=["sequential", "batched"])
    t.add_argument("--unroll", type=int, default=1, help="batched: steps per loop iteration")
    t.add_argument(
        "--convs",
        nargs="+",
        choices=("matmul", "native"),
        default=["matmul"],
        help="batched: convolutions as matrix products, Keras's own, or both",
    )
    t.add_argument(
        "--jobs",
        nargs="+",
        choices=("full", "run"),
        default=["full"],
        help="K full-data models, or the default run's 5 folds + 3 full fits",
    )
    t.add_argument(
        "--tails",
        nargs="+",
        choices=("on", "off"),
        default=["on"],
        help="--jobs run: the epoch's tail as a program of the full fits, or not",
    )
    g = sub.add_parser("cut")
    g.add_argument("--data-dir", type=Path, required=True)
    g.add_argument("--rows", type=int, default=640)
    g.add_argument("--test-rows", type=int, default=200)
    g.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report")
    r.add_argument("runs", type=Path, nargs="+")
    c = sub.add_parser("compiles")
    c.add_argument("log", type=Path)
    args = p.parse_args()
    if args.command == "cut":
        cut(args.data_dir, args.rows, args.test_rows, args.out)
    elif args.command == "throughput":
        throughput(args)
    elif args.command == "compiles":
        compiles(args.log)
    else:
        report(args.runs)


if __name__ == "__main__":
    main()
