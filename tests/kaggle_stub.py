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
  `Remaining today` lines.
Failures as the CLI's main() prints them: an HTTPError's text (`403 Client Error: ...` and its
hint, `400 Client Error: ...`) or `ConnectionError: ...` with the --debug hint, exit code 1.

State lives in $KAGGLE_STUB_STATE (a folder); $KAGGLE_STUB_MODE is ok, unjoined, limit or
offline; $KAGGLE_STUB_SCORE is the public score every submission gets.
"""

from __future__ import annotations

import json
import os
import sys
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
    else:
        fail(f"kaggle stub: no answer for {args}")


if __name__ == "__main__":
    main()
