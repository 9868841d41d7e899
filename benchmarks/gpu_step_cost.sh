#!/usr/bin/env bash
# What a step of the batched engine costs on a GPU, and what lowers it, in one call:
#
#   OUT=runs/gpu bash benchmarks/gpu_step_cost.sh
#
# images/s of 8 models (the default run's 5 folds + 3 full fits) on 42,000 rows: float32 and
# bfloat16; the epoch's loop unrolled 8 steps at a time; XLA's CUDA-graph command buffers over
# the loop; then the Kaggle-size default run with the fastest XLA setting,
# the search with 1 and then 3 trial processes on the card, and with the time left 16 and 32
# models.
set -u
START=$SECONDS
DEADLINE=${DEADLINE:-300}
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu}
W=${WORK:-/tmp/gpu-step}
[ "${OUT:0:1}" = / ] || OUT="$PWD/$OUT"
mkdir -p "$OUT" "$W"
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
GRAPHS=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL
left() { echo $((DEADLINE - (SECONDS - START))); }
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    [ "$(left)" -lt "$limit" ] && limit=$(left)
    if [ "$limit" -le 5 ]; then echo "== $name skipped: out of time"; return 124; fi
    timeout "$limit" "$@" >"$W/$name.txt" 2>&1
    local code=$?
    grep -E "^(RESULT|wall time|study|engine:)" "$W/$name.txt" | sed "s/^/$name: /"
    echo "== $name exit $code at $((SECONDS - START)) s"
    return $code
}
rate() { grep -h "^RESULT" "$W/$1.txt" | grep "models=8 precision=float32" | head -1 |
    sed 's/.*images_s=\([0-9]*\).*/\1/'; }
T=("$PY" -m benchmarks.engines throughput --engines batched --rows 42000 --epochs 3)

"$PY" -m benchmarks.engines tile --rows 42000 --test-rows 28000 --out "$W/kaggle" >/dev/null
nvidia-smi --query-gpu=name --format=csv,noheader
step base 60 "${T[@]}" --models 8 --precisions float32 mixed_bfloat16
step unroll8 45 "${T[@]}" --models 8 --precisions float32 --unroll 8
XLA_FLAGS=$GRAPHS step graphs 45 "${T[@]}" --models 8 --precisions float32
best=""
[ "$(rate graphs || echo 0)" -gt $(($(rate base || echo 0) * 105 / 100)) ] 2>/dev/null && best=$GRAPHS
echo "kaggle42k XLA_FLAGS: ${best:-none}"
XLA_FLAGS=$best step kaggle42k 120 "$PY" run.py --data-dir "$W/kaggle" --trials 0 \
    --run-name kaggle42k --runs-dir "$W/runs" --submissions-dir "$W/subs"
for jobs in 1 3; do
    step "search$jobs" 70 "$PY" run.py --data-dir input/sample --search-only --trials 3 \
        --search-epochs 3 --n-jobs $jobs --study-name "jobs$jobs" \
        --storage "sqlite:///$W/search.db" --runs-dir "$W/runs-search"
done
step wide 60 "${T[@]}" --models 16 32 --precisions float32
"$PY" -m benchmarks.engines report "$W"/runs/* | tee "$OUT/results.txt"
grep -h "^RESULT" "$W"/*.txt >>"$OUT/results.txt"
(cd "$W" && tar czf "$OUT/step.tgz" ./*.txt runs/*/summary.json)
