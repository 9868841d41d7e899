#!/usr/bin/env bash
# The GPU rows of benchmarks/README.md in one go, as run on a lent GPU machine that has JAX but
# no TensorFlow (Keras 3 then runs on JAX: same model code, augmentation inside the model).
#
#   OUT=runs/gpu bash benchmarks/gpu_suite.sh [sweep variants...]
#
# Writes to $OUT: gpu.txt (card), smoke.txt, throughput.txt, flops.txt, tta.txt, sweep.txt,
# sweep.tgz (each sweep run's summary, ensemble probabilities and log), dmon.txt (utilisation).
set -u
PY=${PYTHON:-python3}
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
nvidia-smi dmon -s u -d 2 >"$OUT/dmon.txt" 2>&1 &
DMON=$!
step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date +%T))"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local code=$?
    grep -E "^(RESULT|device:|command:)" "$OUT/$name.txt"
    echo "== $name exit $code"
    return $code
}
# A one-fold, one-epoch run first: if the stack does not work here, stop before the long steps.
step smoke 120 "$PY" run.py --data-dir input/sample --folds 2 --epochs 1 --trials 0 \
    --run-name smoke --runs-dir "$OUT/smoke-runs" --submissions-dir "$OUT/smoke-subs" || {
    tail -30 "$OUT/smoke.txt"
    kill $DMON
    exit 1
}
rm -rf "$OUT/smoke-runs" "$OUT/smoke-subs"
step throughput 150 "$PY" benchmarks/throughput.py --epochs 4 --rows 6400
step flops 120 "$PY" benchmarks/flops.py --epochs 3 --rows 6400
step tta 150 "$PY" benchmarks/time_to_accuracy.py
if [ $# -gt 0 ]; then  # the sweep gets what is left of DEADLINE seconds
    step sweep $((${DEADLINE:-570} - SECONDS - 20)) "$PY" benchmarks/sweep.py --parallel "${SWEEP_PARALLEL:-8}" \
        --out "$OUT/sweep" "$@"
    pkill -f "run.py --data-dir" # runs a timed-out sweep left behind
    tail -15 "$OUT/sweep.txt"
    (cd "$OUT/sweep" && tar czf ../sweep.tgz ./*.log runs/*/summary.json runs/*/ensemble.npz)
    rm -rf "$OUT/sweep"
fi
kill $DMON
