"""A run on Kaggle's GPU: `--on-kaggle` packs this repository into a Kaggle notebook (a script
kernel), pushes it with the kaggle CLI, waits for it, and brings its run folder and submission
home as if the run had trained here.

What travels: `run.py` and `src/`, zipped into the kernel's one script, which unpacks them,
picks Keras on JAX when JAX sees the notebook's GPU and is new enough for the batched engine
(else TensorFlow: Kaggle's image has an older JAX, requirements-min.txt), and runs `run.py`
with the run's training flags. The notebook reads the competition's files (attached as its
`competition_sources`) and writes to /kaggle/working, whose files `kaggle kernels output`
downloads. Everything about one remote run is kept in `runs/.kaggle/<run>/` (the pushed folder,
`kernel.json`, the downloaded output), so a second `--on-kaggle` with the same run name attaches
to the run instead of pushing it again, and `--on-kaggle --report RUN` fetches a finished one.
The CLI's outputs are read as kaggle 2.2.5 prints them (`kaggle/api/kaggle_api_extended.py`):
`Kernel version N successfully pushed.  Please check progress at URL` (with no N where Kaggle's
answer had none: the version is recorded all the same, and attached to next time), the
competition rejected as a source on the line before it (the version exists and runs without
the data: recorded as such, and the next call pushes again), `USER/SLUG has status
"KernelWorkerStatus.RUNNING"` (NEW_SCRIPT and QUEUED wait alike) with a `Failure message:
"..."` line, `Output file downloaded to PATH` per file.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from src import UserError
from src.config import ROOT, Config, flag_of
from src.outputs.checks import output_folders
from src.outputs.files import atomic_path, read_json, show, write_json
from src.review.kaggle_cli import check_ready, explain
from src.train import BATCHED_JAX

DONE = {"COMPLETE"}
FAILED = {"ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}
LOG_TAIL = 15  # lines of a failed run's log shown

SCRIPT = '''"""digit_recogniser run {run!r}, pushed by `python run.py --on-kaggle`."""
import base64, io, os, shutil, subprocess, sys, tempfile, zipfile

PACKAGE = "{package}"
ARGS = {args!r}

code = tempfile.mkdtemp(prefix="digit_recogniser-")
zipfile.ZipFile(io.BytesIO(base64.b64decode(PACKAGE))).extractall(code)
env = dict(os.environ)
probe = ("import jax; v = tuple(int(n) for n in jax.__version__.split('.')[:3] if n.isdigit());"
         " print(v >= {batched_jax} and any(d.platform == 'gpu' for d in jax.devices()))")
found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
if found.stdout.strip() == "True":  # the batched engine: every model in one program on the GPU
    env["KERAS_BACKEND"] = "jax"  # (else TensorFlow, on the GPU if it sees one)
print("digit_recogniser: python run.py " + " ".join(ARGS), flush=True)
status = subprocess.call([sys.executable, "run.py", *ARGS], cwd=code, env=env)
root = os.environ.get("DIGITS_KAGGLE_ROOT", "/kaggle")  # (a test's stand-in notebook)
shutil.rmtree(os.path.join(root, "working", "runs", ".jax-cache"), ignore_errors=True)
sys.exit(status)
'''


def slug_of(run_name: str) -> str:
    """The kernel's slug (and title): Kaggle's lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", f"digit-recogniser-{run_name}".lower())[:50].strip("-")


def remote_args(cfg: Config) -> list[str]:
    """The run's training flags as the notebook's `run.py` takes them: every setting declared
    `remote` in src/config.py (its data, folders and submission are the notebook's own;
    submitting happens here, after the fetch)."""
    from src.cli import command_flags, remote_settings

    return command_flags(cfg, remote_settings())


# Accelerators the pinned kaggle CLI calls retired (`_RETIRED_ACCELERATORS` in its
# kaggle_api_extended.py): Kaggle runs such a push elsewhere, or on no GPU at all.
RETIRED = {"nvidiateslap100": "NvidiaTeslaP100", "tpuv38": "TpuV38", "tpu1vmv38": "Tpu1VmV38",
           "tpuv232": "TpuV232", "tpuv2256": "TpuV2256"}  # fmt: skip


def check_notebook_settings(cfg: Config) -> None:
    """Refuse, before anything is pushed or trained, what the notebook cannot honour: it runs
    offline on Keras with JAX (the batched engine on its GPU) and reads the competition's own
    files."""
    default = Config()
    batched = cfg.engine in ("auto", "batched")
    problems = [
        (cfg.storage, "the notebook runs offline and cannot reach --storage; leave it out"),
        (cfg.data_dir != default.data_dir,
         f"the notebook reads {cfg.competition}'s own files, not --data-dir; leave it out"),
        (cfg.deterministic, "--deterministic is TensorFlow's and the notebook trains on JAX;"
         " leave it out"),
        (cfg.augment in ("idg", "layers"), f"--augment {cfg.augment} needs TensorFlow and the"
         " notebook trains on JAX; use --augment affine"),
        (batched and cfg.precision == "mixed_float16", "--precision mixed_float16 needs loss"
         " scaling, which the batched engine does not do; use --precision mixed_bfloat16"),
        (batched and dict(cfg.overrides).get("ema_momentum"), "--set ema_momentum is"
         " model.fit's only; add --engine sequential, or leave it out"),
        (cfg.kaggle_accelerator.lower() in RETIRED, f"{flag_of('kaggle_accelerator')}"
         f" {cfg.kaggle_accelerator} is retired (Kaggle would run it on another machine); use"
         " NvidiaTeslaT4"),
    ]  # fmt: skip
    for problem, why in problems:
        if problem:
            raise UserError(f"--on-kaggle: {why}")


def package() -> bytes:
    """run.py and every module of src/, zipped (sorted, fixed dates: the same code, the same
    bytes)."""
    files = [ROOT / "run.py", *sorted((ROOT / "src").rglob("*.py"))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(ROOT)), date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def write_kernel(cfg: Config, user: str, folder: Path) -> str:
    """The folder `kaggle kernels push` sends: the script and kernel-metadata.json; its ref."""
    slug = slug_of(cfg.run_name)
    folder.mkdir(parents=True, exist_ok=True)
    script = SCRIPT.format(run=cfg.run_name, package=base64.b64encode(package()).decode(),
                           args=remote_args(cfg), batched_jax=BATCHED_JAX)  # fmt: skip
    (folder / f"{slug}.py").write_text(script)
    metadata = {
        "id": f"{user}/{slug}", "title": slug, "code_file": f"{slug}.py",
        "language": "python", "kernel_type": "script", "is_private": True,
        "enable_gpu": True, "enable_tpu": False, "enable_internet": cfg.kaggle_internet,
        "competition_sources": [cfg.competition], "dataset_sources": [], "kernel_sources": [],
        "model_sources": [],
    }  # fmt: skip
    write_json(folder / "kernel-metadata.json", metadata)
    return metadata["id"]


def _kaggle(exe: str, *args: str) -> tuple[int, str]:
    """Run the CLI; (exit code, stdout and stderr together)."""
    done = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def _refused(what: str, output: str, competition: str) -> UserError:
    """A failed CLI call in one line: Kaggle's own message and what to do (`explain`)."""
    return UserError(f"--on-kaggle: {what}: {explain(output, competition)}")


def kaggle_user(exe: str) -> str:
    """The account the CLI is logged in as (`kaggle config view`)."""
    code, out = _kaggle(exe, "config", "view")
    found = re.search(r"^- username: (\S+)", out, re.MULTILINE)
    if code or not found or found.group(1) == "None":
        raise _refused("kaggle config view named no user", out, "")
    return found.group(1)


def push(exe: str, cfg: Config, folder: Path) -> dict:
    """`kaggle kernels push`; what it said, as kernel.json keeps it: the version (None where
    Kaggle's answer had none) and the URL, and `unjoined` when Kaggle took the push but not the
    competition as a source. UserError if refused."""
    args = ["kernels", "push", "-p", str(folder), "--accelerator", cfg.kaggle_accelerator]
    code, out = _kaggle(exe, *args)
    refused = re.search(r"^Kernel push error: (.*)$", out, re.MULTILINE)
    if refused:
        hint = ""
        if "quota" in refused.group(1).lower():
            hint = "; `kaggle quota` shows what is left this week"
        elif re.search(r"accelerator|machine", refused.group(1), re.IGNORECASE):
            hint = "; pick another --kaggle-accelerator"
        raise UserError(f"--on-kaggle: Kaggle refused the push: {refused.group(1)}{hint}")
    pushed = re.search(r"^Kernel version (?:(\d+) )?successfully pushed\.\s+Please check"
                       r" progress at (\S+)", out, re.MULTILINE)  # fmt: skip
    if code or not pushed:
        raise _refused("kaggle kernels push failed", out, cfg.competition)
    version = int(pushed.group(1)) if pushed.group(1) else None
    return {"version": version, "url": pushed.group(2),
            "unjoined": "not valid competition sources" in out}  # fmt: skip


def version_of(kernel: dict) -> str:
    """ "version N", or what stands for it where Kaggle's answer named none."""
    return f"version {kernel['version']}" if kernel["version"] else "its latest version"


def status(exe: str, ref: str) -> tuple[str, str]:
    """(state, failure message) from `kaggle kernels status`, e.g. ("RUNNING", "")."""
    code, out = _kaggle(exe, "kernels", "status", ref)
    found = re.search(r'has status "(?:KernelWorkerStatus\.)?([A-Z_]+)"', out)
    if code or not found:
        raise _refused(f"kaggle kernels status {ref} failed", out, "")
    failure = re.search(r'^Failure message: "(.*)"$', out, re.MULTILINE)
    return found.group(1), failure.group(1) if failure else ""


def wait(exe: str, ref: str, cfg: Config, url: str) -> tuple[str, str]:
    """Poll the kernel until it ends or `--kaggle-timeout` passes; its final (state, failure)."""
    start = time.monotonic()
    last = ""
    while True:
        state, failure = status(exe, ref)
        if state in DONE | FAILED:
            return state, failure
        waited = time.monotonic() - start
        if waited + cfg.kaggle_poll > cfg.kaggle_timeout:
            raise UserError(
                f"--on-kaggle: {ref} is still {state} after {waited:.0f} s (--kaggle-timeout);"
                f" it keeps running on Kaggle ({url}): run the same command again, or"
                f" `python run.py --on-kaggle --report {cfg.run_name}`, to come back to it"
            )
        if state != last:
            print(f"kaggle: {ref} is {state} ({waited:.0f} s); looking again every"
                  f" {cfg.kaggle_poll:g} s, Ctrl-C leaves it running", flush=True)  # fmt: skip
            last = state
        time.sleep(cfg.kaggle_poll)


def read_log(path: Path) -> str:
    """A kernel's log as text: Kaggle writes it as JSON records with a `data` field each."""
    text = path.read_text() if path.exists() else ""
    try:
        return "".join(record.get("data", "") for record in json.loads(text))
    except (ValueError, TypeError, AttributeError):
        return text


def fetch(exe: str, ref: str, out_dir: Path) -> str:
    """`kaggle kernels output` into `out_dir` (emptied first); the kernel's log as text."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    code, out = _kaggle(exe, "kernels", "output", ref, "-p", str(out_dir))
    if code:
        raise _refused(f"kaggle kernels output {ref} failed", out, "")
    return read_log(out_dir / f"{ref.split('/')[1]}.log")


def bring_home(cfg: Config, out_dir: Path, where: dict) -> dict:
    """The fetched run folder to runs/<run>, its submission to submissions/ (checked first);
    summary.json says where it trained. Returns the summary."""
    from src.review.report import build_report
    from src.review.submit import check_run_submission

    fetched = out_dir / "runs" / cfg.run_name
    if not (fetched / "summary.json").exists():
        raise UserError(
            f"--on-kaggle: the notebook's output has no runs/{cfg.run_name}/summary.json; its"
            f" files are in {show(out_dir)}"
        )
    partial = cfg.runs_dir / f".{cfg.run_name}.fetching"  # renamed whole: never half a folder
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(fetched, partial)
    partial.rename(cfg.run_dir)
    cfg.submissions_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cfg.submissions_dir / f"{cfg.run_name}.csv") as tmp:
        shutil.copyfile(out_dir / f"{cfg.run_name}.csv", tmp)
    check_run_submission(cfg)  # the run's layout, and the change against the last submission
    with atomic_path(cfg.submissions_dir / "submission.csv") as tmp:
        shutil.copyfile(cfg.submissions_dir / f"{cfg.run_name}.csv", tmp)
    summary = read_json(cfg.run_dir / "summary.json")
    summary.update(trained_on=where, recipe=cfg.recipe)
    write_json(cfg.run_dir / "summary.json", summary)
    build_report(cfg.run_dir)
    return summary


def train_on_kaggle(cfg: Config) -> None:
    """--on-kaggle: push the run (or attach to the one pushed before), wait, bring it home,
    maybe submit. Every check comes before the push."""
    if already_home(cfg):
        return
    if cfg.run_dir.exists():
        raise UserError(
            f"--on-kaggle: {show(cfg.run_dir)} exists (a run trained here); give another"
            " --run-name"
        )
    check_notebook_settings(cfg)
    exe = check_ready(flag_of("on_kaggle"))
    state_file = kaggle_home(cfg) / "kernel.json"
    if state_file.exists():
        kernel = attach(state_file)
    else:
        with output_folders(cfg):  # made and probed; removed again if the push is refused
            kernel = push_run(exe, cfg)
    wait_and_bring_home(exe, cfg, kernel)


def fetch_from_kaggle(cfg: Config) -> None:
    """--on-kaggle --report RUN: wait for a run pushed from here before, and bring it home."""
    if already_home(cfg):
        return
    exe = check_ready(flag_of("on_kaggle"))
    state_file = kaggle_home(cfg) / "kernel.json"
    if not state_file.exists():
        raise UserError(
            f"--on-kaggle --report {cfg.run_name}: no Kaggle run of that name was pushed from"
            f" here ({show(state_file)} is missing)"
        )
    wait_and_bring_home(exe, cfg, attach(state_file))


def kaggle_home(cfg: Config) -> Path:
    """runs/.kaggle/<run>/: the pushed folder, kernel.json and the fetched output."""
    return cfg.runs_dir / ".kaggle" / cfg.run_name


def already_home(cfg: Config) -> bool:
    """Whether the run came home before (then said, and submitted if asked)."""
    if not (cfg.run_dir / "summary.json").exists():
        return False
    print(f"{show(cfg.run_dir)}: already home from Kaggle; `python run.py --report"
          f" {cfg.run_name}` rebuilds its page")  # fmt: skip
    if cfg.submit:
        _submit(cfg, read_json(cfg.run_dir / "summary.json"))
    return True


def attach(state_file: Path) -> dict:
    """The kernel pushed before, as kernel.json records it (said in a line)."""
    kernel = read_json(state_file)
    print(f"kaggle: attaching to {kernel['ref']} ({version_of(kernel)}, pushed"
          f" {kernel['pushed']}): {kernel['url']}", flush=True)  # fmt: skip
    return kernel


def push_run(exe: str, cfg: Config) -> dict:
    """Write the notebook and push it; what kernel.json keeps of it (written only once the
    push succeeded)."""
    home = kaggle_home(cfg)
    user = kaggle_user(exe)
    with tempfile.TemporaryDirectory() as tmp:  # a refused push leaves nothing behind
        ref = write_kernel(cfg, user, Path(tmp) / "push")
        pushed = push(exe, cfg, Path(tmp) / "push")
        shutil.rmtree(home / "push", ignore_errors=True)  # an earlier push's (one refused)
        shutil.copytree(Path(tmp) / "push", home / "push")
    kernel = {"ref": ref, **pushed, "pushed": time.strftime("%Y-%m-%d %H:%M:%S"),
              "accelerator": cfg.kaggle_accelerator, "args": remote_args(cfg)}  # fmt: skip
    if kernel["unjoined"]:  # the version exists, and runs without the competition's files
        label = kernel["version"] or "latest"
        write_json(home / f"kernel-unjoined-v{label}.json", kernel)
        rules = f"https://www.kaggle.com/competitions/{cfg.competition}/rules"
        raise UserError(
            f"--on-kaggle: Kaggle took {ref} ({version_of(kernel)}, {kernel['url']}) but not"
            f" {cfg.competition}'s files, so it runs without them and fails; join the"
            f" competition and accept its rules at {rules}: the same command then pushes a"
            " version that has them"
        )
    write_json(home / "kernel.json", kernel)
    print(f"kaggle: pushed {ref} {version_of(kernel)} ({cfg.kaggle_accelerator},"
          f" python run.py {' '.join(kernel['args'])}); watch it at {kernel['url']}",
          flush=True)  # fmt: skip
    return kernel


def wait_and_bring_home(exe: str, cfg: Config, kernel: dict) -> None:
    """Wait for the kernel to end; a failure's log shown, else the run brought home."""
    home = kaggle_home(cfg)
    try:
        state, failure = wait(exe, kernel["ref"], cfg, kernel["url"])
    except KeyboardInterrupt:
        raise UserError(
            f"interrupted: {kernel['ref']} keeps running on Kaggle; run the same command again"
            f" (or `python run.py --on-kaggle --report {cfg.run_name}`) to come back to it"
        ) from None
    log = fetch(exe, kernel["ref"], home / "output")
    if state in FAILED:
        label = kernel["version"] or "latest"
        (home / "kernel.json").rename(home / f"kernel-{state.lower()}-v{label}.json")
        lines = log.strip().splitlines()[-LOG_TAIL:]
        print("\n".join(f"  | {line}" for line in lines), file=sys.stderr)
        why = f" ({failure})" if failure else ""
        raise UserError(
            f"--on-kaggle: the Kaggle run {kernel['ref']} ended {state}{why}; its log is in"
            f" {show(home / 'output')}; the next --on-kaggle with this run name pushes again"
        )
    device = re.search(r"^device: (.+)$", log, re.MULTILINE)
    where = {"kaggle_kernel": kernel["ref"], "version": kernel["version"],
             "accelerator": kernel["accelerator"],
             "device": device.group(1).strip() if device else ""}  # fmt: skip
    summary = bring_home(cfg, home / "output", where)
    from src.review.summary import headline

    print(f"kaggle: {kernel['ref']} finished on {where['device'] or 'Kaggle'}; the run is in"
          f" {show(cfg.run_dir)}, its submission {show(cfg.submissions_dir / 'submission.csv')}"
          f" {headline(summary)})")  # fmt: skip
    if cfg.submit:
        _submit(cfg, summary)


def _submit(cfg: Config, summary: dict) -> None:
    """--submit (and --wait) on the fetched run, as after a local one."""
    from src.review.submit import message_for, submit_and_record

    submit_and_record(cfg, message_for(cfg, summary))
