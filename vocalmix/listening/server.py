"""``vocalmix listening-test serve``: the test page on a local port, submissions stored as JSON.

Standard library only (``http.server``). Only the page, ``test.json`` and the excerpts are
served (the key in ``private/`` and the stored answers are not); audio supports byte ranges so
the browser can seek. ``POST /api/submit`` checks a submission against ``test.json`` (every mix
rated in every category, on the scale) and writes it to ``responses/`` atomically under a new
name, so answers are never overwritten.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import InputError
from ..files import write_atomic

MAX_SUBMISSION_BYTES = 1 << 20
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/test.json": ("test.json", "application/json"),
}
_AUDIO = re.compile(r"^/audio/([A-Za-z0-9_-]+\.wav)$")
_LISTENER = re.compile(r"^[A-Za-z0-9-]{4,64}$")


def validate_submission(document, test: dict) -> dict:
    """The submission if it is complete and on the scale; raises ValueError naming the problem."""
    if not isinstance(document, dict):
        raise ValueError("submission must be a JSON object")
    listener = document.get("listener_id")
    if not isinstance(listener, str) or not _LISTENER.match(listener):
        raise ValueError("listener_id missing or malformed")
    if document.get("test_id") != test["test_id"]:
        raise ValueError("submission is for a different test")
    ratings = document.get("ratings")
    if not isinstance(ratings, list):
        raise ValueError("ratings must be a list")
    stimuli = {s["id"]: song["id"] for song in test["songs"] for s in song["stimuli"]}
    categories = {c["id"] for c in test["categories"]}
    low, high = test["scale"]["min"], test["scale"]["max"]
    seen = set()
    for item in ratings:
        if not isinstance(item, dict):
            raise ValueError("each rating must be an object")
        stimulus, category, value = item.get("stimulus"), item.get("category"), item.get("rating")
        if stimulus not in stimuli:
            raise ValueError(f"unknown stimulus {stimulus!r}")
        if category not in categories:
            raise ValueError(f"unknown category {category!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"rating {value!r} is not a whole number from {low} to {high}")
        if (stimulus, category) in seen:
            raise ValueError(f"{stimulus} / {category} rated twice")
        seen.add((stimulus, category))
    missing = len(stimuli) * len(categories) - len(seen)
    if missing:
        raise ValueError(f"{missing} ratings missing: rate every mix in every category")
    return document


def store_submission(test_dir: Path, document: dict) -> Path:
    """Write ``document`` to ``responses/`` under a fresh name, atomically, flushed to disk, never replacing a file."""
    folder = Path(test_dir) / "responses"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(document, indent=2)
    while True:
        target = folder / f"{stamp}-{document['listener_id']}-{secrets.token_hex(3)}.json"
        try:
            return write_atomic(target, text, replace=False, durable=True)
        except FileExistsError:
            continue  # the name was taken (same second, same listener): draw another


class _Handler(BaseHTTPRequestHandler):
    server_version = "vocalmix-listening"
    server: ListeningServer  # the server this handler serves (http.server types it as any server)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, document: dict) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        root = self.server.test_dir
        if path in _STATIC:
            name, content_type = _STATIC[path]
            self._send(200, (root / name).read_bytes(), content_type)
            return
        match = _AUDIO.match(path)
        if match and (root / "audio" / match.group(1)).is_file():
            self._send_audio(root / "audio" / match.group(1))
            return
        self._json(404, {"ok": False, "error": "not found"})

    def _send_audio(self, path: Path) -> None:
        data = path.read_bytes()
        size = len(data)
        ranged = re.match(r"^bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if ranged and (ranged.group(1) or ranged.group(2)):
            if ranged.group(1):
                start = int(ranged.group(1))
                end = min(int(ranged.group(2)), size - 1) if ranged.group(2) else size - 1
            else:
                start, end = max(0, size - int(ranged.group(2))), size - 1
            if start > end or start >= size:
                self._send(416, b"", "audio/wav", {"Content-Range": f"bytes */{size}"})
                return
            self._send(
                206,
                data[start : end + 1],
                "audio/wav",
                {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"},
            )
            return
        self._send(200, data, "audio/wav", {"Accept-Ranges": "bytes"})

    def do_POST(self):  # noqa: N802
        if self.path != "/api/submit":
            self._json(404, {"ok": False, "error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_SUBMISSION_BYTES:
            self._json(413 if length > MAX_SUBMISSION_BYTES else 400, {"ok": False, "error": "bad length"})
            return
        try:
            document = validate_submission(json.loads(self.rfile.read(length)), self.server.test)
        except ValueError as exc:
            self._json(400, {"ok": False, "error": str(exc)})
            return
        document = {**document, "received_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        stored = store_submission(self.server.test_dir, document)
        self._json(int(HTTPStatus.CREATED), {"ok": True, "stored": stored.name})


class ListeningServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, test_dir: Path, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
        self.test_dir = Path(test_dir)
        test_path = self.test_dir / "test.json"
        if not test_path.is_file():
            raise InputError(f"{test_dir}: no test.json (build the test with 'vocalmix listening-test build')")
        try:
            self.test = json.loads(test_path.read_text())
        except ValueError as exc:
            raise InputError(f"{test_path}: not valid JSON ({exc})") from None
        self.verbose = verbose
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror})") from None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}/"
