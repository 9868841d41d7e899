#!/usr/bin/env python3
"""A stand-in for the official `kaggle` CLI 2.2.5, installed as `kaggle` on PATH by the tests.

It answers the commands this project runs in the real CLI's formats, read from its source
(kaggle/api/kaggle_api_extended.py, kaggle/cli.py):
- `competitions submit -c C -f FILE -m MSG`: prints `Submission ref: N`, `K submissions
  remaining today.`, then the server's message; records the submission as PENDING;
- `competitions submissions -c C --format json`: `print_json` of the fields ref, fileName,
  date (isoformat), description, status (`str(SubmissionStatus.X)`), publicScore,
  privateScore (strings or null), newest first; a submission is COMPLETE from its second read;
- `competitions submission-limits C`: `Submissions today`, `Lifetime submissions`,
  `Remaining today` lines;
- `config view`: `Configuration values from DIR` and `- username: stub-user` lines;
- `kernels push -p DIR [--accelerator A]`: checks the folder as the CLI does (metadata, code
  file), prints `Kernel version N successfully pushed.  Please check progress at URL`; mode
  `unjoined` first prints the invalid-competition-sources line (the push goes through, the
  data does not), `quota` prints `Kernel push error: ...` (exit code 0, as the CLI does);
- `kernels status REF`: `REF has status "KernelWorkerStatus.QUEUED"`, then RUNNING; at the
  third look it runs the pushed script (below) and answers COMPLETE, or ERROR with a
  `Failure message: "..."` line;
- `kernels output REF -p DIR`: the notebook's /kaggle/working files into DIR, one
  `Output file downloaded to PATH` line each, and its log as DIR/SLUG.log (Kaggle's JSON
  records).
The pushed script runs as a notebook would run it: from a copy of the pushed folder, outside
this repository, with no PYTHONPATH, and a fake /kaggle root (DIGITS_KAGGLE_ROOT) whose
input/<competition>/ holds $KAGGLE_STUB_DATA's files (none in modes `unjoined` and `nodata`),
so a file the script needs and the push lacks fails the run.
Failures as the CLI's main() prints them: an HTTPError's text (`403 Client Error: ...` and its
hint, `400 Client Error: ...`) or `ConnectionError: ...` with the --debug hint, exit code 1.

State lives in $KAGGLE_STUB_STATE (a folder); $KAGGLE_STUB_MODE is ok, unjoined, limit, quota,
shape, rejected, nodata or offline; $KAGGLE_STUB_SCORE is the public score every submission gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

STATE = Path(os.environ["KAGGLE_STUB_STATE"])
MODE = os.environ.get("KAGGLE_STUB_MODE", "ok")
URL = "https://www.kaggle.com/api/i/competitions.CompetitionApiService"


def load() -> list[dict]:
    path = STATE / "submissions.json"
    return json.loads(path.read_text()) if path.exists() else []


def save(rows: list[dict]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "submissions.json").write_text(json.dumps(rows))


def fail(text: str) -> None:
    print(text, file=sys.stderr)
    sys.exit(1)


def option(args: list[str], *names: str) -> str | None:
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None


def main() -> None:
    args = sys.argv[1:]
    rows = load()
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.log").open("a") as log:
        log.write(" ".join(args) + "\n")
    if args[:2] == ["competitions", "submit"]:
        if MODE == "offline":
            fail("ConnectionError: HTTPSConnectionPool(host='www.kaggle.com', port=443): Max"
                 " retries exceeded with url: /api/v1/competitions (Caused by"
                 " NameResolutionError(\"Failed to resolve 'www.kaggle.com'\"))\n\nIf this is"
                 " unexpected, you can re-run with `kaggle --debug [command]` to see the full\n"
                 "traceback.")  # fmt: skip
        if MODE == "unjoined":
            fail(f"403 Client Error: Forbidden for url: {URL}/StartSubmissionUpload\n\nYou don't"
                 " have access to this resource.\nIf this is a competition, you may need to"
                 " accept its rules first at\n  https://www.kaggle.com/competitions/"
                 "<competition>/rules")  # fmt: skip
        if MODE == "limit":
            fail(f"400 Client Error: Bad Request for url: {URL}/CreateSubmission")
        ref = 50_000_001 + len(rows)
        rows.insert(0, {"ref": ref, "fileName": Path(option(args, "-f")).name,
                        "date": datetime.now(timezone.utc).isoformat(),
                        "description": option(args, "-m"), "status": "SubmissionStatus.PENDING",
                        "publicScore": None, "privateScore": None, "reads": 0})  # fmt: skip
        save(rows)
        print(f"Submission ref: {ref}")
        print("4 submissions remaining today.")
        print("Successfully submitted to Digit Recognizer", end="")
    elif args[:2] == ["competitions", "submissions"]:
        assert option(args, "--format") == "json", args
        for row in rows:
            row["reads"] += 1
            if row["reads"] >= 2:
                row.update(status="SubmissionStatus.COMPLETE",
                           publicScore=os.environ.get("KAGGLE_STUB_SCORE", "0.99100"))  # fmt: skip
        save(rows)
        if not rows:
            print("No submissions found")
            return
        fields = ["ref", "fileName", "date", "description", "status", "publicScore",
                  "privateScore"]  # fmt: skip
        print(json.dumps([{f: row[f] for f in fields} for row in rows], indent=2))
    elif args[:2] == ["competitions", "submission-limits"]:
        left = 0 if MODE == "limit" else 4
        print(f"Submissions today: {5 - left}\nLifetime submissions: 12\nRemaining today: {left}")
    elif args[:2] == ["config", "view"]:
        print(f"Configuration values from {Path.home() / '.kaggle'}\n- username: stub-user\n"
              "- auth_method: ACCESS_TOKEN\n- path: None\n- proxy: None")  # fmt: skip
    elif args[:1] == ["kernels"]:
        kernels(args[1:])
    else:
        fail(f"kaggle stub: no answer for {args}")


def kernels(args: list[str]) -> None:
    """`kernels push`, `kernels status`, `kernels output`, as the module docstring says."""
    if MODE == "offline":
        fail("ConnectionError: HTTPSConnectionPool(host='www.kaggle.com', port=443): Max"
             " retries exceeded (Caused by NameResolutionError(\"Failed to resolve"
             " 'www.kaggle.com'\"))")  # fmt: skip
    if args[0] == "push":
        folder = Path(option(args, "-p"))
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        if not (folder / meta["code_file"]).is_file():
            fail(f"Source file not found: {folder / meta['code_file']}")
        if MODE == "quota":
            print("Kernel push error: Maximum weekly GPU quota of 30.00 hours reached.")
            return
        if MODE == "rejected":
            fail("400 Client Error: Bad Request for url: https://www.kaggle.com/api/i/"
                 "kernels.KernelsApiService/SaveKernel")  # fmt: skip
        if MODE == "shape":
            print(f"Kernel push error: Accelerator {option(args, '--accelerator')} is not"
                  " available for this kernel.")  # fmt: skip
            return
        if MODE == "unjoined":
            print("The following are not valid competition sources and could not be added to"
                  f" the kernel: {meta['competition_sources']}")  # fmt: skip
        slug = meta["id"].split("/")[1]
        home = STATE / "kernels" / slug
        version = len(list(home.glob("v*"))) + 1 if home.exists() else 1
        shutil.copytree(folder, home / f"v{version}")
        (home / "state.json").write_text(json.dumps({"version": version, "looks": 0,
                                                     "accelerator": option(args, "--accelerator"),
                                                     "meta": meta}))  # fmt: skip
        print(f"Kernel version {version} successfully pushed.  Please check progress at"
              f" https://www.kaggle.com/code/{meta['id']}")  # fmt: skip
    elif args[0] == "status":
        ref = args[1]
        home = STATE / "kernels" / ref.split("/")[1]
        state = json.loads((home / "state.json").read_text())
        state["looks"] += 1
        if state["looks"] == 1:
            state["status"] = "QUEUED"
        elif state["looks"] == 2:
            state["status"] = "RUNNING"
        elif "result" not in state:
            state["result"] = run_kernel(home, state)
            state["status"] = "COMPLETE" if state["result"] == 0 else "ERROR"
        (home / "state.json").write_text(json.dumps(state))
        print(f'{ref} has status "KernelWorkerStatus.{state["status"]}"')
        if state["status"] == "ERROR":
            print(f'Failure message: "Your notebook hit an error: exit code {state["result"]}"')
    elif args[0] == "output":
        ref, target = args[1], Path(option(args, "-p"))
        home = STATE / "kernels" / ref.split("/")[1]
        working = home / "root" / "working"
        for path in sorted(p for p in working.rglob("*") if p.is_file()):
            out = target / path.relative_to(working)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            print(f"Output file downloaded to {out}")
        log = target / f"{ref.split('/')[1]}.log"
        shutil.copyfile(home / "log.json", log)
        print(f"Kernel log downloaded to {log} ")
    else:
        fail(f"kaggle stub: no answer for kernels {args}")


def run_kernel(home: Path, state: dict) -> int:
    """Run the pushed script as a notebook would; its log as Kaggle keeps it; the exit code."""
    meta = state["meta"]
    root = home / "root"
    shutil.rmtree(root, ignore_errors=True)
    (root / "working").mkdir(parents=True)
    for competition in meta["competition_sources"]:
        data = root / "input" / competition
        if MODE not in ("unjoined", "nodata"):
            shutil.copytree(os.environ["KAGGLE_STUB_DATA"], data)
    (root / "input").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as code:
        script = Path(shutil.copytree(home / f"v{state['version']}", Path(code) / "kernel"))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["DIGITS_KAGGLE_ROOT"] = str(root)
        command = [sys.executable, str(script / meta["code_file"])]
        done = subprocess.run(command, cwd=root / "working", env=env, capture_output=True,
                              text=True)  # fmt: skip
    records = [{"stream_name": name, "time": 0.0, "data": line + "\n"}
               for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
               for line in text.splitlines()]  # fmt: skip
    (home / "log.json").write_text(json.dumps(records))
    return done.returncode


if __name__ == "__main__":
    main()
