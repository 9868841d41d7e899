#!/usr/bin/env bash
# The GPU measurements of benchmarks/README.md ("Engines") in one call of at most 8 minutes,
# on a machine with JAX and a GPU (Keras runs on JAX: same model code, the batched engine):
#
#   OUT=runs/gpu bash benchmarks/gpu_suite.sh
#
# 1. smoke: a 2-fold, 2-epoch run (stops the suite if the stack does not work here);
# 2. throughput: images/s of the sequential and batched engines, 1 and 8 models, float32 and
#    bfloat16 (python -m benchmarks.engines throughput); then 8 models with the convolutions
#    as Keras's own (grouped convolutions under vmap) instead of matrix products;
# 3. kaggle42k: the default run (5 folds + 3 full fits, 30 epochs) on a 42,000-row train.csv
#    tiled from the sample (timing only), the engine chosen automatically, the precision the
#    faster at 8 models in 2; then kaggle42k-warm, the same run again with its compiled
#    programs in runs/.jax-cache (both log their XLA compilations: RESULT compiles=...);
#    then throughput-tail: that run's 8 models for 2 epochs, the epoch's tail (the full fits'
#    last steps) as a program of its own or masked in the 8-model program (tail=on/off);
# 4. the default run on the sample with the batched engine in bfloat16 and float32, and with the
#    sequential engine (in the background meanwhile: its OOF is what the others must match);
# 5. search: 4 trials with one trial process, then with 4 sharing the card;
# then RESULT lines for every run, GPU utilisation (nvidia-smi dmon) in the archive.
# Writes $OUT/results.txt and $OUT/suite.tgz (every log, summary.json and the dmon trace).
# Wheels in .whl/ (packages the machine lacks) are installed first; the lent machines have JAX
# on Python 3.12 but not these (carry .whl with the call):
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --no-deps -d .whl keras==3.15.1 optree==0.20.0 namex==0.1.0 optuna==5.0.0 \
#     alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 greenlet==3.5.6
# TINY=1: a CPU dry run.
set -u
START=$SECONDS
DEADLINE=${DEADLINE:-450}  # seconds for everything; each step gets what is left
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu}
W=${WORK:-/tmp/gpu-suite}
[ "${OUT:0:1}" = / ] || OUT="$PWD/$OUT"
mkdir -p "$OUT" "$W"
if [ -z "${TINY:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -n "${TINY:-}" ]; then  # a dry run of the script itself
    ROWS=640 TEST_ROWS=200 FOLDS=2 EPOCHS=(--epochs 2) TRIALS=2 SEARCH_EPOCHS=1
    AUTO=(--engine batched) SAMPLE="$W/kaggle"  # a CPU's auto engine is the sequential one
else
    ROWS=42000 TEST_ROWS=28000 FOLDS=5 EPOCHS=() TRIALS=4 SEARCH_EPOCHS=10 AUTO=() SAMPLE=input/sample
fi
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
    "$PY" -m benchmarks.engines report "$W"/runs/* | tee "$OUT/results.txt"
    for log in "$W"/kaggle42k*.txt; do
        [ -f "$log" ] && "$PY" -m benchmarks.engines compiles "$log" | tee -a "$OUT/results.txt"
    done
    grep -h "^RESULT" "$W"/*.txt >>"$OUT/results.txt"
    tail -n +1 "$W/gpu.txt"
    (cd "$W" && tar czf "$OUT/suite.tgz" --exclude='*.keras' --exclude='*.npz' --exclude='*.png' \
        --exclude='*.db' --exclude=.jax-cache ./*.txt runs)
}
"$PY" -m benchmarks.engines tile --rows $ROWS --test-rows $TEST_ROWS --out "$W/kaggle"
# The smoke run has its own runs folder: the Kaggle-size run starts with an empty compile cache.
step smoke 120 "${RUN[@]}" --runs-dir "$W/runs-smoke" --run-name smoke --data-dir "$SAMPLE" \
    --folds 2 --epochs 2 --full-fits 1 || {
    tail -40 "$W/smoke.txt"
    finish
    exit 1
}
# bfloat16 compiles programs of its own (before 31f9646 it silently ran float32's): 150 s.
step throughput 150 "$PY" -m benchmarks.engines throughput --rows $ROWS --models 1 8
step throughput-native 45 "$PY" -m benchmarks.engines throughput --rows $ROWS --models 8 \
    --engines batched --precisions float32 --convs native
# The Kaggle-size runs in the precision that was faster at 8 models (auto if none measured).
PREC=$(grep -h "^RESULT engine=batched models=8 .*conv=matmul" "$W/throughput.txt" |
    sed 's/.*precision=\([a-z_0-9]*\).*images_s=\([0-9]*\).*/\2 \1/' | sort -n | tail -1 |
    cut -d' ' -f2)
echo "== Kaggle-size runs: --precision ${PREC:=auto}"
JAX_LOG_COMPILES=1 step kaggle42k 150 "${RUN[@]}" --run-name kaggle42k --data-dir "$W/kaggle" \
    --folds $FOLDS "${EPOCHS[@]}" --precision "$PREC"
# The same again: every program now comes from runs/.jax-cache (what a second run saves).
JAX_LOG_COMPILES=1 step kaggle42k-warm 150 "${RUN[@]}" --run-name kaggle42k-warm \
    --data-dir "$W/kaggle" --folds $FOLDS "${EPOCHS[@]}" --precision "$PREC"
# Does the tail's own program pay on this card? Its epochs here; its compile is among
# kaggle42k's jit(_steps_program) seconds (RESULT compiles=...).
step throughput-tail 45 "$PY" -m benchmarks.engines throughput --rows $ROWS --engines batched \
    --jobs run --tails on off --epochs 2 --precisions "${PREC/auto/float32}"
# The sequential default run on the sample takes minutes: it runs beside the next steps.
timeout "$(left)" "$PY" run.py --data-dir "$SAMPLE" --trials 0 --run-name sequential \
    --folds $FOLDS "${EPOCHS[@]}" --engine sequential --precision float32 --runs-dir "$W/runs" \
    --submissions-dir "$W/subs-sequential" >"$W/sequential.txt" 2>&1 &
SEQUENTIAL=$!
step batched-bf16 100 "${RUN[@]}" --run-name batched-bf16 --data-dir "$SAMPLE" --folds $FOLDS "${EPOCHS[@]}" \
    --precision mixed_bfloat16
step batched-f32 100 "${RUN[@]}" --run-name batched-f32 --data-dir "$SAMPLE" --folds $FOLDS "${EPOCHS[@]}" \
    --precision float32
for jobs in 1 4; do
    step "search-jobs$jobs" 90 "$PY" run.py --data-dir "$SAMPLE" --folds $FOLDS --search-only "${AUTO[@]}" \
        --trials $TRIALS --search-epochs $SEARCH_EPOCHS --n-jobs $jobs --study-name "jobs$jobs" \
        --storage "sqlite:///$W/search.db" --runs-dir "$W/runs-search"
done
wait $SEQUENTIAL
echo "== sequential exit $? at $((SECONDS - START)) s"
finish
