"""`--submit`: hand a checked submission file to the official `kaggle` CLI.

The CLI (`pip install -r requirements-kaggle.txt`) is an optional dependency, run as a program
only when submitting. Before calling it we look for its credentials (by name and file, never
reading or printing a secret) so that a missing login is one clear line, not the CLI's page of
help; the submission file is kept either way.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from src.errors import UserError
from src.files import show
from src.submission import submit_command

CREDENTIAL_HELP = (
    "the kaggle CLI takes them from KAGGLE_API_TOKEN, ~/.kaggle/access_token, `kaggle auth"
    " login`, ~/.kaggle/kaggle.json or KAGGLE_USERNAME and KAGGLE_KEY"
    " (token: kaggle.com > Settings > API)"
)


def credential_source(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """Where the kaggle CLI would find credentials (a name, never the secret), or None."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME", "~")).expanduser() if home is None else home
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config_dirs = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    xdg = Path(env.get("XDG_CONFIG_HOME", home / ".config"))
    config_dirs += [home / ".kaggle", xdg / "kaggle"]
    for folder in config_dirs:
        for name in ("access_token", "access_token.txt", "credentials.json", "kaggle.json"):
            path = folder / name
            if path.is_file() and path.stat().st_size:
                return str(path)
    return None


def submit(path: Path, message: str, competition: str) -> None:
    """Run `kaggle competitions submit` on `path`; UserError (file kept) when it cannot."""
    keep = f"{show(path)} is kept; submit it later with --report RUN --submit"
    source = credential_source()
    if source is None:
        raise UserError(f"--submit: no Kaggle credentials found; {CREDENTIAL_HELP}. {keep}")
    exe = shutil.which("kaggle")
    if exe is None:
        raise UserError(
            f"--submit: the kaggle CLI is not installed (pip install -r"
            f" requirements-kaggle.txt). {keep}"
        )
    command = submit_command(show(path), message, competition)
    print(f"submitting: {shlex.join(command)}  (credentials: {source})", flush=True)
    done = subprocess.run([exe, *command[1:]], check=False)
    if done.returncode:
        raise UserError(
            f"--submit: kaggle exited with code {done.returncode} (its message is above). {keep}"
        )
