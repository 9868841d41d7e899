#!/usr/bin/env bash
# The GPU measurements of benchmarks/README.md ("Engines", "Kaggle-size holdout") in one call of
# at most 8 minutes, on a machine with JAX and a GPU (Keras runs on JAX: same model code, the
# batched engine), on the competition's own files:
#
#   OUT=runs/gpu KAGGLE_DATA=.data/kaggle bash benchmarks/gpu_suite.sh
#
# KAGGLE_DATA: the competition's train.csv(.gz), test.csv(.gz) and sample_submission.csv
# (default ../shared/data/kaggle, else .data/kaggle: copy them there and carry .data).
# 1. smoke: a 2-fold, 2-epoch run on the sample (stops the suite if the stack does not work);
# 2. kaggle: the default run (`run.py --folds 5`: 5 folds + 3 full fits, 30 epochs) on the real
#    42,000 + 28,000 digits, as a user runs it: wall time, and its XLA compilations (RESULT
#    compiles=...);
# 3. holdout: the same run trained on a stratified 90 % of train.csv and scored on the other
#    4,200 digits, which it never sees, its test.csv those digits and the competition's 28,000
#    as a Kaggle run's (python -m benchmarks.holdout --with-test, with test-time augmentation
#    and the folds/full/all re-combinations); HOLDOUT_RECIPES adds recipes, e.g.
#    HOLDOUT_RECIPES='pl="--folds 5 --pseudo-labels 0.99"', and HOLDOUT_S (default 150) is
#    the step's limit in seconds;
# 4. throughput: images/s of the sequential and batched engines, 1 and 8 models, float32 and
#    bfloat16, on the real train.csv (python -m benchmarks.engines throughput); then 8 models
#    with the convolutions as Keras's own (grouped convolutions under vmap) instead of matrix
#    products, and the default run's 8 models with the epoch's tail (the full fits' last
#    steps) as a program of its own or masked in the 8-model program (tail=on/off);
# 5. the default run on the sample with the batched engine in bfloat16 and float32, and with the
#    sequential engine (in the background meanwhile: its OOF is what the others must match);
# then RESULT lines for every run, GPU utilisation (nvidia-smi dmon) in the archive. Steps run
# in this order while time is left: the first three are the ones that must not be cut.
# Writes $OUT/results.txt and $OUT/suite.tgz (every log, summary.json and the dmon trace).
# Wheels in .whl/ (packages the machine lacks) are installed first; the lent machines have JAX
# on Python 3.12 but not these (carry .whl with the call):
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --no-deps -d .whl keras==3.15.1 optree==0.20.0 namex==0.1.0 optuna==5.0.0 \
#     alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 greenlet==3.5.6
# TINY=1: a CPU dry run (the first rows of the real files, 2 folds, 2 epochs).
set -u
shopt -s nullglob  # a step that left no run folder is left out of the report, not an error
START=$SECONDS
DEADLINE=${DEADLINE:-450}  # seconds for everything; each step gets what is left
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu}
W=${WORK:-/tmp/gpu-suite}
KAGGLE=${KAGGLE_DATA:-../shared/data/kaggle}
[ -d "$KAGGLE" ] || KAGGLE=.data/kaggle
HOLDOUT_RECIPES=${HOLDOUT_RECIPES:-}
HOLDOUT_S=${HOLDOUT_S:-150}
[ "${OUT:0:1}" = / ] || OUT="$PWD/$OUT"
mkdir -p "$OUT" "$W"
if [ -z "${TINY:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -n "${TINY:-}" ]; then  # a dry run of the script itself
    FOLDS=2 EPOCHS=(--epochs 2)
    AUTO=(--engine batched) SAMPLE="$W/kaggle"  # a CPU's auto engine is the sequential one
    "$PY" -m benchmarks.engines cut --data-dir "$KAGGLE" --rows 640 --test-rows 200 --out "$W/kaggle"
    KAGGLE="$W/kaggle"
else
    FOLDS=5 EPOCHS=() AUTO=() SAMPLE=input/sample
fi
compgen -G "$KAGGLE/train.csv*" >/dev/null || {
    echo "no competition files in $KAGGLE: set KAGGLE_DATA"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$W/gpu.txt" 2>&1
nvidia-smi dmon -s u -d 1 >"$W/dmon.txt" 2>&1 &
DMON=$!
left() { echo $((DEADLINE - (SECONDS - START))); }
step() {  # step NAME SECONDS COMMAND...: time-limited (also by DEADLINE), output to $W/NAME.txt
    local name=$1 limit=$2
    shift 2
    [ "$(left)" -lt "$limit" ] && limit=$(left)
    if [ "$limit" -le 5 ]; then echo "== $name skipped: out of time"; return 124; fi
    echo "== $name ($(date +%T), limit $limit s)"
    timeout "$limit" "$@" >"$W/$name.txt" 2>&1
    local code=$?
    grep -E "^(RESULT|device:|engine:|wall time|out-of-fold|test accuracy|study|search wall)" \
        "$W/$name.txt"
    echo "== $name exit $code at $((SECONDS - START)) s"
    return $code
}
RUN=("$PY" run.py --trials 0 --runs-dir "$W/runs" --submissions-dir "$W/subs" "${AUTO[@]}")
finish() {
    kill "$DMON" 2>/dev/null
    "$PY" -m benchmarks.engines report "$W"/runs/* "$W"/holdout/*/runs/* | tee "$OUT/results.txt"
    [ -f "$W/kaggle.txt" ] && "$PY" -m benchmarks.engines compiles "$W/kaggle.txt" |
        tee -a "$OUT/results.txt"
    grep -h "^RESULT" "$W"/*.txt >>"$OUT/results.txt"
    tail -n +1 "$W/gpu.txt"
    (cd "$W" && tar czf "$OUT/suite.tgz" --exclude='*.keras' --exclude='*.npz' --exclude='*.png' \
        --exclude='*.db' --exclude=.jax-cache --exclude='*.csv' ./*.txt ./runs* ./holdout*)
}
# The smoke run has its own runs folder: the Kaggle-size run starts with an empty compile cache.
step smoke 120 "${RUN[@]}" --runs-dir "$W/runs-smoke" --run-name smoke --data-dir "$SAMPLE" \
    --folds 2 --epochs 2 --full-fits 1 || {
    tail -40 "$W/smoke.txt"
    finish
    exit 1
}
# The default run on the real files, as a user starts it (the precision: auto).
JAX_LOG_COMPILES=1 step kaggle 150 "${RUN[@]}" --run-name kaggle --data-dir "$KAGGLE" \
    --folds $FOLDS "${EPOCHS[@]}"
# The same run on 90 % of train.csv, scored on the 10 % it never sees.
eval "EXTRA=($HOLDOUT_RECIPES)"
step holdout "$HOLDOUT_S" "$PY" -m benchmarks.holdout --data-dir "$KAGGLE" --no-classic --tta \
    --with-test --out "$W/holdout" default="--folds $FOLDS ${EPOCHS[*]} ${AUTO[*]}" "${EXTRA[@]}"
# bfloat16 compiles programs of its own: 150 s.
step throughput 150 "$PY" -m benchmarks.engines throughput --data-dir "$KAGGLE" --models 1 8
step throughput-native 45 "$PY" -m benchmarks.engines throughput --data-dir "$KAGGLE" \
    --models 8 --engines batched --precisions float32 --convs native
step throughput-tail 45 "$PY" -m benchmarks.engines throughput --data-dir "$KAGGLE" \
    --engines batched --jobs run --tails on off --epochs 2 --precisions float32
# The sequential default run on the sample takes minutes: it runs beside the next steps.
timeout "$(left)" "$PY" run.py --data-dir "$SAMPLE" --trials 0 --run-name sequential \
    --folds $FOLDS "${EPOCHS[@]}" --engine sequential --precision float32 --runs-dir "$W/runs" \
    --submissions-dir "$W/subs-sequential" >"$W/sequential.txt" 2>&1 &
SEQUENTIAL=$!
step batched-bf16 100 "${RUN[@]}" --run-name batched-bf16 --data-dir "$SAMPLE" --folds $FOLDS \
    "${EPOCHS[@]}" --precision mixed_bfloat16
step batched-f32 100 "${RUN[@]}" --run-name batched-f32 --data-dir "$SAMPLE" --folds $FOLDS \
    "${EPOCHS[@]}" --precision float32
wait $SEQUENTIAL
echo "== sequential exit $? at $((SECONDS - START)) s"
finish
