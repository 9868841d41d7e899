"""The official `kaggle` CLI, run as a program: submit a file, read the submissions' scores.

The CLI (`pip install -r requirements-kaggle.txt`) is an optional dependency. Before it is
called its credentials are looked for where the pinned CLI looks (by name and file, never
reading or printing a secret) and its version checked, so a missing login or an older CLI is
one clear line, not a page of help. What it prints is read as version 2.2.5 prints it
(`kaggle/api/kaggle_api_extended.py`, `kaggle/cli.py`; the tests run it against a stand-in of
Kaggle's API): `Submission ref: N` after a submit, `competitions submissions --format json` as a
list of {ref, fileName, date, description, status, publicScore, privateScore} with the status
as `SubmissionStatus.<NAME>`. A failure ends in one line with Kaggle's own message (the CLI's
generic hints left out) and what to do; the submission file is kept either way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from src import UserError
from src.config import flag_of, mode_flag
from src.outputs.files import show
from src.outputs.submission import submit_command

CREDENTIAL_HELP = (
    "the kaggle CLI takes them from KAGGLE_API_TOKEN (the token or its file),"
    " ~/.kaggle/access_token, `kaggle auth login`, kaggle.json (in KAGGLE_CONFIG_DIR, else"
    " ~/.kaggle) or KAGGLE_USERNAME and KAGGLE_KEY (token: kaggle.com > Settings > API)"
)


def _text(path: Path) -> str:
    try:
        return path.read_text().strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""


def credential_source(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """Where the kaggle CLI (the pinned version) finds credentials: a name, never the secret;
    None where it finds none. Its order (kagglesdk's `get_access_token_from_env`, the CLI's
    `authenticate`): an access token in KAGGLE_API_TOKEN (the token, or a file holding it),
    ~/.kaggle/access_token or access_token.txt; a username and key from kaggle.json (in
    KAGGLE_CONFIG_DIR, else ~/.kaggle, else, only where ~/.kaggle does not exist, the XDG
    folder), each overridden by KAGGLE_USERNAME and KAGGLE_KEY; the OAuth login of `kaggle auth
    login`, ~/.kaggle/credentials.json."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    dot_kaggle = home / ".kaggle"
    token = env.get("KAGGLE_API_TOKEN", "")
    if token:  # the CLI looks no further, even where the file it names is empty
        return "KAGGLE_API_TOKEN" if not Path(token).exists() or _text(Path(token)) else None
    for name in ("access_token", "access_token.txt"):
        if _text(dot_kaggle / name):
            return str(dot_kaggle / name)
    if env.get("KAGGLE_CONFIG_DIR"):
        config_dir = Path(env["KAGGLE_CONFIG_DIR"])
    elif dot_kaggle.exists():
        config_dir = dot_kaggle
    else:
        config_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    try:
        legacy = json.loads(_text(config_dir / "kaggle.json") or "{}")
    except ValueError:
        legacy = {}
    legacy = legacy if isinstance(legacy, dict) else {}
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        legacy[name[7:].lower()] = env.get(name) or legacy.get(name[7:].lower())
    if legacy.get("username") and legacy.get("key"):
        return "KAGGLE_KEY" if env.get("KAGGLE_KEY") else str(config_dir / "kaggle.json")
    if _text(dot_kaggle / "credentials.json"):
        return str(dot_kaggle / "credentials.json")
    return None


POLL_S = 20.0  # between two reads of the submissions list while waiting for a score
SCORED, FAILED = "SubmissionStatus.COMPLETE", "SubmissionStatus.ERROR"


PINNED = (2, 2, 5)  # requirements-kaggle.txt: the CLI whose outputs this module reads


def find_cli() -> str | None:
    """The kaggle executable: on PATH, else beside this Python (a virtual environment's bin/,
    where pip installs it, whether or not the environment is activated)."""
    places = [os.environ.get("PATH", ""), str(Path(sys.executable).parent)]
    return shutil.which("kaggle", path=os.pathsep.join(places))


def check_ready(action: str, path: Path | None = None) -> str:
    """The kaggle executable, once the pinned CLI (or a newer one) is installed and finds
    credentials; UserError otherwise (before anything trains or is pushed)."""
    keep = f" {show(path)} is kept; submit it later with --report RUN --submit." if path else ""
    install = "pip install -r requirements-kaggle.txt"
    if credential_source() is None:
        raise UserError(f"{action}: no Kaggle credentials found; {CREDENTIAL_HELP}.{keep}")
    exe = find_cli()
    if exe is None:
        raise UserError(f"{action}: the kaggle CLI is not installed ({install}).{keep}")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    version = tuple(int(n) for n in found.groups()) if found else None
    if version is None or version < PINNED:
        said = ".".join(map(str, version)) if version else "no version"
        pinned = ".".join(map(str, PINNED))
        raise UserError(
            f"{action}: the kaggle CLI at {exe} is {said}, older than {pinned}, whose outputs"
            f" this project reads; upgrade it ({install}).{keep}"
        )
    return exe


def remaining_today(exe: str, competition: str) -> int | None:
    """Submissions left today (`kaggle competitions submission-limits`), None if unknown."""
    done = subprocess.run([exe, "competitions", "submission-limits", competition],
                          capture_output=True, text=True, check=False)  # fmt: skip
    found = re.search(r"^Remaining today: (\d+)", done.stdout, re.MULTILINE)
    return int(found.group(1)) if done.returncode == 0 and found else None


NO_NETWORK = "no network (Kaggle could not be reached); try again when online"
# The pinned CLI's own words around Kaggle's message (`format_http_error`, `print_auth_help`,
# cli.py's main): its generic hints, which name no competition, and its --debug advice.
CLI_HINTS = ("You don't have access to this resource.", "The resource was not found.",
             "You have been rate limited.", "This is a problem on Kaggle's side",
             "If this is unexpected, you can re-run", "⚠ Warning:", "Warning:")  # fmt: skip
AUTH_HELP = "Authentication required to call the Kaggle API."


def offline(output: str) -> bool:
    """Whether a failed kaggle call's output says Kaggle could not be reached."""
    text = output.lower()
    return any(w in text for w in ("connectionerror", "max retries", "name resolution",
                                   "temporary failure", "network is unreachable"))  # fmt: skip


def kaggle_said(output: str) -> str:
    """Kaggle's own message in a failed call's output, on one line: the CLI's generic hints,
    progress bars and warnings left out (the last paragraph that remains)."""
    kept = []
    for paragraph in re.split(r"\n\s*\n", output.strip()):
        lines = [line.strip() for line in paragraph.splitlines()
                 if line.strip() and "%|" not in line]  # fmt: skip
        if lines and not lines[0].startswith(CLI_HINTS):
            kept.append(" ".join(lines))
    return kept[-1] if kept else "nothing"


def explain(output: str, competition: str, exe: str | None = None) -> str:
    """A failed call in one line: Kaggle's own message and what to do about it (for a 400 on
    a submission, also the day's remaining submissions)."""
    if offline(output):
        return NO_NETWORK
    if AUTH_HELP in output:
        return (f"Kaggle did not accept the credentials in {credential_source()}; renew the"
                " token at kaggle.com > Settings > API")  # fmt: skip
    said = kaggle_said(output)
    status = re.search(r"\b(\d{3}) (?:Client|Server) Error", said)
    code = int(status.group(1)) if status else None
    rules = f"https://www.kaggle.com/competitions/{competition}/rules"
    if code == 403 or "rules" in said.lower():
        advice = f"join the competition and accept its rules at {rules}, then try again"
    elif code == 404:
        advice = f"check the name (--competition {competition}, or the notebook's)"
    elif code == 429:
        advice = "wait a little, then try again"
    elif code and code >= 500:
        advice = "a problem on Kaggle's side; try again later"
    elif exe is not None and remaining_today(exe, competition) == 0:
        advice = "the daily submission limit is reached; submit again tomorrow"
    else:
        advice = ""
    return f"Kaggle said: {said}" + (f"; {advice}" if advice else "")


def submit(path: Path, message: str, competition: str) -> int | None:
    """Run `kaggle competitions submit` on `path` (its output shown as it comes); the
    submission's ref, or None if the CLI printed none. UserError (file kept) when it fails."""
    exe = check_ready(flag_of("submit"), path)
    command = submit_command(show(path), message, competition)
    print(f"submitting: {shlex.join(command)}  (credentials: {credential_source()})", flush=True)
    done = subprocess.run([exe, *command[1:]], capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stdout.flush()
    if done.returncode:
        what = explain(done.stdout + done.stderr, competition, exe)
        raise UserError(
            f"--submit: kaggle exited with code {done.returncode}: {what}. {show(path)} is kept;"
            " submit it later with --report RUN --submit"
        )
    found = re.search(r"^Submission ref: (\d+)", done.stdout, re.MULTILINE)
    return int(found.group(1)) if found else None


def list_submissions(competition: str) -> list[dict]:
    """The competition's submissions of this account, newest first, as the CLI lists them."""
    exe = check_ready(mode_flag("scores"))
    done = subprocess.run(
        [exe, "competitions", "submissions", "-c", competition, "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise UserError(
            f"kaggle competitions submissions -c {competition}: exit code {done.returncode}:"
            f" {explain(done.stdout + done.stderr, competition)}"
        )
    text = done.stdout.strip()
    if not text or text.startswith("No submissions found"):
        return []
    try:
        rows = json.loads(text[text.index("[") :])
    except ValueError:
        raise UserError(
            f"kaggle competitions submissions: unexpected output ({text.splitlines()[0][:80]});"
            " check the kaggle CLI's version (requirements-kaggle.txt)"
        ) from None
    return rows


def find(rows: list[dict], ref: int | None, message: str, file_name: str) -> dict | None:
    """The row of a submission: by its ref, else by the message and file name it was sent with."""
    for row in rows:
        if ref is not None and row.get("ref") == ref:
            return row
    for row in rows:
        if row.get("description") == message and row.get("fileName") == file_name:
            return row
    return None


def wait_for_score(competition: str, ref: int | None, message: str, file_name: str,
                   timeout: float) -> dict | None:  # fmt: skip
    """Poll the submissions list until this submission is scored (or fails to be), at most
    `timeout` seconds; its row, or None if it is still pending then."""
    start = time.monotonic()
    while True:
        row = find(list_submissions(competition), ref, message, file_name)
        status = None if row is None else row.get("status")
        if status in (SCORED, FAILED):
            return row
        if time.monotonic() - start + POLL_S > timeout:
            return None
        print(f"kaggle: {status or 'not listed yet'}; next look in {POLL_S:g} s", flush=True)
        time.sleep(POLL_S)
