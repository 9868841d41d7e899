"""Model compute efficiency: FLOPs per training image x images/s, against this CPU's fp32 peak.

    python -m benchmarks.flops [--epochs 3] [--rows 6400] [--set KEY=VALUE ...]

- FLOPs: TensorFlow's profiler counts the default model's forward pass for one image; a training
  step costs about 3x that (forward, plus backward for activations and for weights).
- Throughput: plain `model.fit` on in-memory arrays (no augmentation: compute, not input), the
  median epoch after a warm-up one, for three variants in this process: float32, float32 with
  XLA (`jit_compile=True`), and the `mixed_bfloat16` policy (this CPU has AVX512_BF16).
- Peak: nominal = cores x clock (/proc/cpuinfo, the base clock a VM reports) x FP32 FLOPs per
  cycle per core (`--flops-per-cycle`, 64 for AMD Zen 5: two 512-bit FMA pipes x 16 lanes x 2;
  this "AMD EPYC" reports avx_vnni and avx512_vp2intersect, which Zen 5 has and Zen 4 lacks);
  measured = the best of a few 2048x2048 float32 (and bfloat16) matmuls through TensorFlow,
  which runs at boost clock: the practical peak the training is compared with.
On a GPU (`KERAS_BACKEND=jax` where TensorFlow is not installed) the same figures come from
XLA's cost analysis, the variants are float32, mixed_float16 (what run.py uses on a GPU) and
mixed_bfloat16 (JAX always compiles with XLA), the matmuls are 8192^2, and the nominal peak is the
card's datasheet figure (`--peak-tflops`, default: H100/H200 SXM dense FP16 tensor, 989).
`--set` measures another shape of the model (run.py's `--set`, e.g. `filters=16`). The CPU's
vector features (AVX2, AVX-512 and its BF16, AMX) are printed and in the RESULT line, since the
same figures differ by machine.
- Convolutions (CPU, TensorFlow): the model's own Conv2D layers at its training batch, forward
  and both gradients, each timed alone: their rate against the matmul's, and their share of a
  float32 training step (what the rest of the step costs, where the FLOPs are not).
- BatchNorm (CPU, TensorFlow): a training step of the model as it trains (TensorFlow's fused
  BatchNorm kernel, src/model/batch_norm.py) against the same model with Keras's own
  BatchNormalization, their steps interleaved in blocks in this process, so that the machine's
  drift falls on both alike.
Ends with `RESULT flops_per_image=... fp32_img_s=... fp32_gflops=... peak_gflops=...
matmul_gflops=... utilisation=... xla_ratio=... bf16_ratio=... conv_gflops=... conv_share=...
fused_bn_ratio=...`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import keras
import numpy as np

from benchmarks.throughput import EpochTimes
from src.config import ROOT
from src.data.load import load_digits
from src.model.batch_norm import with_keras_batch_norm
from src.model.cnn import build_model
from src.params import default_params, parse_override
from src.train.device import BACKEND, accelerator, configure_device
from src.train.fit import compile_model

if BACKEND == "tensorflow":
    import tensorflow as tf

    xp = tf  # where the matmul dtypes come from
else:
    import jax
    import jax.numpy as jnp

    xp = jnp


def forward_flops(params: dict) -> int:
    """Floating-point operations of one image's forward pass: TF's profiler, or XLA's count."""
    model = build_model(params)
    if BACKEND == "jax":
        # Compiled for the CPU: on a GPU, XLA hands convolutions to cuDNN as custom calls and
        # leaves them out of its count (an H100 run reported 1.8M instead of 86.6M per image).
        cpu = jax.devices("cpu")[0]
        put = lambda vs: [jax.device_put(v.value, cpu) for v in vs]  # noqa: E731
        fn = jax.jit(lambda w, o, x: model.stateless_call(w, o, x, training=False)[0])
        x = jax.device_put(jnp.zeros((1, 28, 28, 1), jnp.float32), cpu)
        lowered = fn.lower(put(model.trainable_variables), put(model.non_trainable_variables), x)
        cost = lowered.compile().cost_analysis()
        return int((cost[0] if isinstance(cost, list) else cost)["flops"])
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((1, 28, 28, 1), tf.float32)).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops


def images_per_second(x, y, params, epochs: int, policy: str, jit: bool) -> float:
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model, timer = build_model(params), EpochTimes()
    compile_model(model, params, int(np.ceil(len(x) / params["batch_size"])), epochs)
    model.jit_compile = jit
    model.fit(x, y, batch_size=params["batch_size"], epochs=epochs, callbacks=[timer], verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return len(x) / float(np.median(timer.times[1:]))


def matmul_gflops(dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best rate of an n x n matmul in `dtype` on the active backend, after a warm-up call."""
    if BACKEND == "jax":
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
        jitted = jax.jit(lambda m: m @ m)

        def step():
            jitted(a).block_until_ready()
    else:
        a = tf.cast(tf.random.normal((n, n), dtype=tf.float32), dtype)
        traced = tf.function(lambda m: tf.matmul(m, m))

        def step():
            traced(a).numpy()

    return 2 * n**3 / best_seconds(step, repeats) / 1e9


def best_seconds(step, repeats: int = 5) -> float:
    """The fastest of `repeats` calls of `step` (which waits for its result), after a first
    call that compiles or traces it and warms up."""
    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def convolution_seconds(params: dict) -> tuple[float, float]:
    """(FLOPs, seconds) of one training batch through the model's convolutions alone: each
    Conv2D at its own shape and the model's batch, forward and both gradients (input and
    kernel) as TensorFlow computes them in training, timed on its own (best of 5) and summed.
    Against a training step's time, it says how much of the step the convolutions are."""
    model, batch = build_model(params), params["batch_size"]
    flops = seconds = 0.0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        (_, h, w, c_in), (_, h_out, w_out, c_out) = layer.input.shape, layer.output.shape
        x = tf.random.normal((batch, h, w, c_in))
        kernel = tf.random.normal((*layer.kernel_size, c_in, c_out))
        upstream = tf.random.normal((batch, h_out, w_out, c_out))
        padding = layer.padding.upper()

        @tf.function(autograph=False)
        def step(x=x, kernel=kernel, upstream=upstream, strides=layer.strides, padding=padding):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf.nn.conv2d(x, kernel, strides, padding)
            dx, dk = tape.gradient(y, [x, kernel], output_gradients=upstream)
            return tf.reduce_sum(dx) + tf.reduce_sum(dk)

        flops += 3 * 2 * batch * h_out * w_out * int(np.prod(layer.kernel_size)) * c_in * c_out
        seconds += best_seconds(lambda step=step: step().numpy())
    return flops, seconds


def batch_norm_step_seconds(x, y, params: dict, rounds: int = 30, block: int = 10) -> dict:
    """Seconds of one training step with the fused BatchNorm (`fused`) and with Keras's own
    (`keras`): the same model, the same batches, blocks of `block` steps interleaved `rounds`
    times after a warm-up."""
    keras.utils.set_random_seed(0)
    fused = build_model(params)
    models = {"fused": fused, "keras": with_keras_batch_norm(fused)}
    batches = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(params["batch_size"])
    steps = {}
    for name, model in models.items():
        compile_model(model, params, int(np.ceil(len(x) / params["batch_size"])), 1)
        model.make_train_function()
        batch_iterator = iter(batches)
        steps[name] = lambda m=model, it=batch_iterator: m.train_function(it)
        for _ in range(block):
            steps[name]()
    seconds = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(block):
                logs = step()
            float(logs["loss"])  # waits for the block's last step
            seconds[name] += time.perf_counter() - start
    return {name: total / (rounds * block) for name, total in seconds.items()}


def cpu_features() -> tuple[str, str]:
    """(the CPU's model name and its vector features in words, the widest as a RESULT token)."""
    info = Path("/proc/cpuinfo").read_text()
    flags = set(next((line.split(":")[1] for line in info.splitlines()
                      if line.startswith("flags")), "").split())  # fmt: skip
    model = next((line.split(":")[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "unknown CPU")  # fmt: skip
    named = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"),
             ("avx512_bf16", "AVX512_BF16"), ("amx_bf16", "AMX")) if flag in flags]  # fmt: skip
    token = next((t for flag, t in (("amx_bf16", "amx"), ("avx512f", "avx512"), ("avx2", "avx2"))
                  if flag in flags), "none")  # fmt: skip
    return f"{model}, {', '.join(named) or 'no AVX2'}{'' if 'AMX' in named else ', no AMX'}", token


def clock_ghz() -> float:
    mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("cpu MHz")]  # fmt: skip
    return max(mhz) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rows", type=int, default=6400)
    p.add_argument("--flops-per-cycle", type=int, default=64, help="FP32, per core (Zen 5: 64)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU: datasheet FP16 peak")
    p.add_argument("--batch-size", type=int, default=0, help="default: the model's (64)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter of the measured model, as run.py's --set")  # fmt: skip
    args = p.parse_args()
    configure_device()
    env = "" if BACKEND == "tensorflow" else f"KERAS_BACKEND={BACKEND} "
    print(f"command: {env}python -m benchmarks.flops --epochs {args.epochs} --rows {args.rows}"
          + (f" --batch-size {args.batch_size}" if args.batch_size else "")
          + "".join(f" --set {text}" for text in args.set))  # fmt: skip
    params = default_params("cnn")
    params.update(parse_override(text, "cnn") for text in args.set)
    if args.batch_size:
        params["batch_size"] = args.batch_size
    forward = forward_flops(params)
    per_image = 3 * forward
    print(f"model ({', '.join(args.set) or 'defaults'}): {forward / 1e6:.1f} MFLOPs forward"
          f" per image, ~{per_image / 1e6:.1f} MFLOPs per training image")  # fmt: skip

    data = load_digits(ROOT / "input" / "sample")
    x, y = data.x_train[: args.rows].astype("float32"), data.y_train[: args.rows]
    if accelerator():
        gpu_report(x, y, params, per_image, args)
        return
    variants = {"fp32": ("float32", False), "xla": ("float32", True),
                "bf16": ("mixed_bfloat16", False)}  # fmt: skip
    speed = measure_variants(x, y, params, args.epochs, variants, per_image, unit="GFLOP")

    cpu, simd = cpu_features()
    print(f"CPU: {cpu}")
    cores = os.cpu_count()
    peak = cores * clock_ghz() * args.flops_per_cycle
    matmul32, matmul16 = matmul_gflops(xp.float32), matmul_gflops(xp.bfloat16)
    achieved = speed["fp32"] * per_image / 1e9
    print(f"peak: {cores} cores x {clock_ghz():.2f} GHz x {args.flops_per_cycle} FP32"
          f" FLOPs/cycle = {peak:.0f} GFLOP/s nominal; measured matmul 2048^2: float32"
          f" {matmul32:.0f} GFLOP/s, bfloat16 {matmul16:.0f} GFLOP/s")  # fmt: skip
    print(f"training runs at {achieved / matmul32:.1%} of the measured float32 matmul rate"
          f" ({achieved / peak:.1%} of the nominal base-clock peak)")  # fmt: skip
    cpu_tokens = ""
    if BACKEND == "tensorflow":  # the convolutions alone, as TensorFlow runs them in training
        conv_flops, conv_s = convolution_seconds(params)
        step_s = params["batch_size"] / speed["fp32"]
        conv_rate = conv_flops / conv_s / 1e9
        print(f"the model's convolutions alone, forward and backward at batch"
              f" {params['batch_size']}: {conv_rate:.0f} GFLOP/s ({conv_rate / matmul32:.0%} of"
              f" the matmul rate), {conv_s * 1e3:.1f} ms of the training step's"
              f" {step_s * 1e3:.1f} ms ({conv_s / step_s:.0%}; the rest: BatchNorm, activations,"
              " dropout, the optimiser, Keras's step)")  # fmt: skip
        cpu_tokens = f" conv_gflops={conv_rate:.0f} conv_share={conv_s / step_s:.2f}"
        bn_s = batch_norm_step_seconds(x, y, params)
        ratio = bn_s["keras"] / bn_s["fused"]
        print(f"a training step with TensorFlow's fused BatchNorm kernel (as the model trains):"
              f" {bn_s['fused'] * 1e3:.1f} ms; with Keras's own BatchNormalization:"
              f" {bn_s['keras'] * 1e3:.1f} ms ({ratio:.2f}x the time; interleaved)")  # fmt: skip
        cpu_tokens += f" fused_bn_ratio={ratio:.2f}"
    print(f"RESULT flops_per_image={per_image / 1e6:.1f}M fp32_img_s={speed['fp32']:.0f}"
          f" fp32_gflops={achieved:.1f} peak_gflops={peak:.0f} matmul_gflops={matmul32:.0f}"
          f" bf16_matmul_gflops={matmul16:.0f} utilisation={achieved / matmul32:.3f}"
          f" xla_ratio={speed['xla'] / speed['fp32']:.2f}"
          f" bf16_ratio={speed['bf16'] / speed['fp32']:.2f} cpu_simd={simd}"
          + cpu_tokens)  # fmt: skip


def measure_variants(x, y, params, epochs: int, variants: dict, per_image: int, unit: str):
    """images/s of each variant {name: (policy, jit)}, printed with its rate and ratio to fp32."""
    scale, digits = {"GFLOP": (1e9, 1), "TFLOP": (1e12, 3)}[unit]
    speed = {name: images_per_second(x, y, params, epochs, policy, jit=jit)
             for name, (policy, jit) in variants.items()}  # fmt: skip
    for name, img_s in speed.items():
        print(f"{name}: {img_s:,.0f} images/s = {img_s * per_image / scale:.{digits}f} {unit}/s"
              f" ({img_s / speed['fp32']:.2f}x float32)")  # fmt: skip
    return speed


def gpu_report(x, y, params: dict, per_image: int, args) -> None:
    """The same figures on a GPU: float32 vs the mixed precisions, against the card's peak."""
    variants = {"fp32": ("float32", True), "fp16": ("mixed_float16", True),
                "bf16": ("mixed_bfloat16", True)}  # fmt: skip
    speed = measure_variants(x, y, params, args.epochs, variants, per_image, unit="TFLOP")
    matmul32 = matmul_gflops(xp.float32, n=8192) / 1e3
    matmul16 = matmul_gflops(xp.float16, n=8192) / 1e3
    achieved = speed["fp16"] * per_image / 1e12
    print(f"card: {accelerator()}; datasheet FP16 dense peak {args.peak_tflops:.0f} TFLOP/s;"
          f" measured matmul 8192^2: float32 {matmul32:.0f} TFLOP/s, float16"
          f" {matmul16:.0f} TFLOP/s")  # fmt: skip
    print(f"mixed_float16 training runs at {achieved / matmul16:.2%} of the measured float16"
          f" matmul rate, batch {params['batch_size']}")  # fmt: skip
    print(f"RESULT flops_per_image={per_image / 1e6:.1f}M batch={params['batch_size']}"
          f" fp32_img_s={speed['fp32']:.0f} fp16_img_s={speed['fp16']:.0f}"
          f" bf16_img_s={speed['bf16']:.0f} fp16_tflops={achieved:.3f}"
          f" matmul_fp32_tflops={matmul32:.0f} matmul_fp16_tflops={matmul16:.0f}"
          f" utilisation={achieved / matmul16:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
