"""A stand-in of Kaggle's API on this machine's loopback, for the real kaggle CLI to talk to.

The pinned CLI (requirements-kaggle.txt) sends every call through kagglesdk, which with
`KAGGLE_API_ENVIRONMENT=LOCALHOST` posts to `http://localhost/api/v1/<service>/<method>`
(`kagglesdk/kaggle_env.py`, `kaggle_http_client.py`) through `requests`, which honours
`HTTP_PROXY`: the stand-in is that proxy, on 127.0.0.1 and a free port, so tests run side by
side and need no root. It answers the calls of `competitions submit` (StartSubmissionUpload, the
upload's PUT, CreateSubmission, GetSubmissionLimits), `competitions submissions`
(ListSubmissions), `kernels push` (SaveKernel), `kernels status` (GetKernelSessionStatus) and
`kernels output` (ListKernelSessionOutput and the files' GETs), and the token's introspection,
with the JSON field names kagglesdk's types read (`kagglesdk/*/types/*.py`).

`mode` chooses what Kaggle answers (module `MODES`). A pushed kernel runs as a notebook would
(`run_kernel`): from a copy of the pushed folder, outside this repository, under a stand-in
/kaggle (DIGITS_KAGGLE_ROOT) whose input/<competition>/ holds the competition's files unless
the mode withholds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

TOKEN = "stand-in-token"
USER = "stand-in-user"
WEB = "http://localhost"
# What Kaggle answers, by mode: "ok"; an HTTP failure of every call after the token's check
# ("missing" 404, "rate" 429, "down" 503, as plain statuses); Kaggle's JSON errors ("rules":
# 403 on a submission, "limit": 400 on CreateSubmission, "quota": a push refused in its
# answer's error field, "shape": its accelerator refused so); a token Kaggle does not know
# ("unauthorized"); a push answered with no
# version ("noversion"), or with the competition rejected as a source ("unjoined": the kernel
# runs without its data); a kernel whose run fails ("nodata"); a kernel first seen as a new
# script ("new_script").
MODES = ("ok", "missing", "rate", "down", "rules", "limit", "quota", "shape", "unauthorized",
         "noversion", "unjoined", "nodata", "new_script")  # fmt: skip
STATUS_TEXT = {404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}
PLAIN = {"missing": 404, "rate": 429, "down": 503}
RULES = "You must accept this competition's rules before you'll be able to submit."
LIMIT = ("Your team has used its daily Submission allowance (5) today, please try again"
         " tomorrow UTC (9.2 hours from now).")  # fmt: skip
QUOTA = "Maximum weekly GPU quota of 30.00 hours reached."


class KaggleStandIn:
    """The stand-in's state (submissions, kernels, the calls made) and its server thread."""

    def __init__(self, root: Path, data: Path | None = None, score: str = "0.99100"):
        self.root, self.data, self.score = root, data, score
        self.mode = "ok"
        self.calls: list[str] = []  # "Method" per API call, "PUT upload" and "GET file"
        self.submissions: list[dict] = []
        self.uploads: dict[str, bytes] = {}
        self.kernels: dict[str, dict] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.stand_in = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """What the CLI's environment needs to reach the stand-in instead of Kaggle."""
        return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": self.proxy,
                "http_proxy": self.proxy, "NO_PROXY": "", "no_proxy": ""}  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ── the API ──
    def answer(self, method: str, body: dict, token: str) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one API call."""
        if method == "IntrospectToken":
            known = body.get("token") == TOKEN and self.mode != "unauthorized"
            return 200, {"active": known, "username": USER if known else ""}
        if token != TOKEN:
            return 401, {"code": 401, "message": "Unauthenticated"}
        if self.mode in PLAIN:
            return PLAIN[self.mode], {}
        handler = getattr(self, method, None)
        if handler is None:
            return 404, {"code": 404, "message": f"the stand-in has no {method}"}
        return handler(body)

    def StartSubmissionUpload(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        if self.mode == "rules":
            return 403, {"code": 403, "message": RULES}
        token = f"blob-{len(self.uploads) + 1}"
        self.uploads[token] = b""
        return 200, {"token": token, "createUrl": f"{WEB}/upload/{token}"}

    def CreateSubmission(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        if self.mode == "limit":
            return 400, {"code": 400, "message": LIMIT}
        token = body["blobFileTokens"]
        ref = 50_000_001 + len(self.submissions)
        self.submissions.insert(0, {
            "ref": ref, "fileName": f"{token}.csv", "reads": 0,
            "date": datetime.now(UTC).isoformat(timespec="seconds") + "Z",
            "description": body.get("submissionDescription", ""), "status": "PENDING",
            "bytes": self.uploads[token],
        })  # fmt: skip
        return 200, {"message": "Successfully submitted to Digit Recognizer", "ref": ref}

    def GetSubmissionLimits(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        left = 0 if self.mode == "limit" else 4
        return 200, {"numToday": 5 - left, "numTotal": 12, "numAllowedNow": left}

    def ListSubmissions(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        """Each submission is scored from its second read on."""
        rows = []
        for row in self.submissions:
            row["reads"] += 1
            if row["reads"] >= 2:
                row.update(status="COMPLETE", publicScore=self.score)
            rows.append({k: v for k, v in row.items() if k not in ("reads", "bytes")})
        return 200, {"submissions": rows}

    def SaveKernel(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        if self.mode == "quota":
            return 200, {"error": QUOTA}
        if self.mode == "shape":
            return 200, {"error": f"Accelerator {body.get('machineShape')} is not available"
                                  " for this kernel."}  # fmt: skip
        slug = body["slug"].split("/")[-1]
        kernel = self.kernels.setdefault(slug, {"versions": []})
        kernel["versions"].append(body)
        kernel.update(looks=0, status=None, failure="")
        version = len(kernel["versions"])
        answer = {"ref": f"/code/{USER}/{slug}", "url": f"{WEB}/code/{USER}/{slug}"}
        if self.mode != "noversion":
            answer["versionNumber"] = version
        if self.mode == "unjoined":
            answer["invalidCompetitionSources"] = body.get("competitionDataSources", [])
        return 200, answer

    def GetKernelSessionStatus(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        """QUEUED (NEW_SCRIPT in that mode), RUNNING, then the kernel runs: COMPLETE or ERROR."""
        kernel = self.kernels.get(body["kernelSlug"])
        if kernel is None:
            return 404, {"code": 404, "message": "Notebook not found"}
        kernel["looks"] += 1
        if kernel["looks"] == 1:
            kernel["status"] = "NEW_SCRIPT" if self.mode == "new_script" else "QUEUED"
        elif kernel["looks"] == 2:
            kernel["status"] = "RUNNING"
        elif kernel["status"] == "RUNNING":
            code = self.run_kernel(body["kernelSlug"])
            kernel["status"] = "COMPLETE" if code == 0 else "ERROR"
            kernel["failure"] = f"Your notebook hit an error: exit code {code}" if code else ""
        answer = {"status": kernel["status"]}
        if kernel["failure"]:
            answer["failureMessage"] = kernel["failure"]
        return 200, answer

    def ListKernelSessionOutput(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        slug = body["kernelSlug"]
        working = self.root / "kernels" / slug / "root" / "working"
        files = sorted(str(p.relative_to(working)) for p in working.rglob("*") if p.is_file())
        start = int(body.get("pageToken") or 0)
        size = int(body.get("pageSize") or 20)
        answer = {"files": [{"url": f"{WEB}/files/{slug}/{name}", "fileName": name}
                            for name in files[start:start + size]]}  # fmt: skip
        if start + size < len(files):
            answer["nextPageToken"] = str(start + size)
        answer["log"] = (self.root / "kernels" / slug / "log.json").read_text()  # the CLI keeps
        return 200, answer  # the first page's

    def file(self, path: str) -> bytes | None:
        """A kernel's output file, `<slug>/<name>`."""
        slug, _, name = path.partition("/")
        found = self.root / "kernels" / slug / "root" / "working" / name
        return found.read_bytes() if found.is_file() else None

    def run_kernel(self, slug: str) -> int:
        """Run the pushed script as a notebook would; its log as Kaggle keeps it; the exit
        code."""
        body = self.kernels[slug]["versions"][-1]
        home = self.root / "kernels" / slug
        root = home / "root"
        shutil.rmtree(root, ignore_errors=True)
        (root / "working").mkdir(parents=True)
        (root / "input").mkdir()
        if self.mode not in ("unjoined", "nodata"):
            for competition in body.get("competitionDataSources", []):
                shutil.copytree(self.data, root / "input" / competition)
        with tempfile.TemporaryDirectory() as code:
            script = Path(code) / "kernel.py"
            script.write_text(body["text"])
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env["DIGITS_KAGGLE_ROOT"] = str(root)
            done = subprocess.run([sys.executable, str(script)], cwd=root / "working", env=env,
                                  capture_output=True, text=True)  # fmt: skip
        records = [{"stream_name": name, "time": 0.0, "data": line + "\n"}
                   for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
                   for line in text.splitlines()]  # fmt: skip
        (home / "log.json").write_text(json.dumps(records))
        return done.returncode


class Handler(BaseHTTPRequestHandler):
    """The proxy's requests: `POST http://localhost/api/v1/<service>/<method>`, the upload's
    `PUT`, the output files' `GET`."""

    def log_message(self, *args) -> None:  # quiet
        pass

    @property
    def stand_in(self) -> KaggleStandIn:
        return self.server.stand_in

    def reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status, STATUS_TEXT.get(status))
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Mon, 07 Dec 2026 12:00:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        method = path.rsplit("/", 1)[-1]
        self.stand_in.calls.append(method)
        payload = json.loads(self.body() or b"{}")
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        status, answer = self.stand_in.answer(method, payload, token)
        if answer:
            self.reply(status, json.dumps(answer).encode())
        else:  # a plain status, no JSON: as a proxy or load balancer answers
            self.reply(status, STATUS_TEXT.get(status, "").encode(), "text/plain")

    def do_PUT(self) -> None:  # noqa: N802
        token = urlsplit(self.path).path.rsplit("/", 1)[-1]
        self.stand_in.calls.append("PUT upload")
        self.stand_in.uploads[token] = self.body()
        self.reply(200, b"{}")

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.removeprefix("/files/")
        self.stand_in.calls.append("GET file")
        data = self.stand_in.file(path)
        if data is None:
            self.reply(404, b"Not Found", "text/plain")
        else:
            self.reply(200, data, "application/octet-stream")
