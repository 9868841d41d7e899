"""Files: atomic writes (a result appears whole under its final name or not at all), JSON, PNG
figures, HTML pages, paths as the user would type them, and text with a URL's secrets masked
(light to import: the command line is recorded with it before any mode loads its libraries)."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it over `path` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # keep the suffix: Keras
    try:
        yield tmp
        os.replace(tmp, path)  # atomic on POSIX within one file system
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path):
    """Parse a JSON file written by `write_json`."""
    return json.loads(path.read_text())


def show(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def pyplot():
    """matplotlib's pyplot, drawing to files only (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_png(fig, path: Path) -> str:
    """Write a matplotlib figure atomically as a PNG, close it, return the file name (for a
    page's links)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return path.name


PAGE_STYLE = "body{font-family:sans-serif;margin:2em}"


def write_html(path: Path, title: str, body: str, style: str = "") -> Path:
    """Write an HTML page (UTF-8, atomically) with `title`, the shared style plus `style`."""
    head = f"<meta charset=utf-8><title>{html.escape(title)}</title>"
    head += f"<style>{PAGE_STYLE}{style}</style>"
    page = f"<!doctype html>\n<html><head>{head}</head><body>\n{body}\n</body></html>\n"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


# What a database URL can carry a secret in: the password of user:password@host, and query
# parameters such as ?password=... (libpq's sslpassword, a token).
_USERINFO = re.compile(r"(\w[\w+.-]*://[^/:@\s]*:)([^@\s]*)(@)")
_QUERY = re.compile(r"([?&](?:password|passwd|pwd|sslpassword|secret|token|api_key)=)([^&\s]*)",
                    re.IGNORECASE)  # fmt: skip


def mask_secrets(text: str) -> str:
    """`text` (a storage URL, a flag, a message) safe to print or record: every password and
    secret-named query value a URL in it carries replaced by ***."""
    return _QUERY.sub(r"\1***", _USERINFO.sub(r"\1***\3", text))


def without_secrets_of(url: str, text: str) -> str:
    """`text` (say, a driver's error message) with every secret `url` carries masked, wherever
    in it and however quoted."""
    secrets = [m.group(2) for m in (*_USERINFO.finditer(url), *_QUERY.finditer(url))]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_secrets(text)
