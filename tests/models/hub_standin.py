"""A stand-in for the Hugging Face hub on 127.0.0.1, serving local directories as model repos.

It answers the requests `huggingface_hub` makes for `snapshot_download`, `hf_hub_download` and
`HfApi.verify_repo_checksums`:

- ``GET /api/models/{repo}/revision/{rev}``: model info with ``sha`` and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}?recursive=...``: file entries with ``size``, git blob
  ``oid`` and, for ``*.safetensors`` files (LFS in real repos), ``lfs.oid`` = sha256;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` (the sha256 for
  LFS files, the git blob id otherwise), ``Content-Length``, ``Accept-Ranges``; ``Range:
  bytes=N-`` gives ``206`` with ``Content-Range``.

Faults for tests, each keyed by file name:
- ``drop_once``: the first GET of the file sends half the body and closes the connection;
- ``corrupt``: the file is served with one byte flipped (same size, wrong sha256);
- ``fail``: every GET of the file answers ``500``.

Every request is logged in ``hub.log`` as ``(method, path, range header)``.  The server stops
answering (``503``) after ``max_requests`` requests, so a client stuck in a retry loop ends.
Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors",)


def git_blob_id(data: bytes) -> str:
    """Git's blob id: sha1 of ``b"blob <size>\\0" + data`` (what the hub reports as ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One served repo: its files (relative path -> bytes) and a fake 40-hex commit."""

    files: dict[str, bytes]
    commit: str

    @classmethod
    def from_dir(cls, root: Path) -> "Repo":
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        commit = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items()))
                              .encode()).hexdigest()
        return cls(files, commit)

    def entry(self, path: str) -> dict:
        data = self.files[path]
        e = {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
        if path.endswith(LFS_SUFFIXES):
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return e

    def etag(self, path: str) -> str:
        e = self.entry(path)
        return e["lfs"]["oid"] if "lfs" in e else e["oid"]


@dataclass
class HubStandIn:
    """The server's state; start with `serve(...)`."""

    repos: dict[str, Repo]
    drop_once: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    max_requests: int = 2000
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    endpoint: str = ""
    _dropped: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, filename: str) -> list[str | None]:
        """Range headers of the GETs of ``filename`` (None: whole file) in arrival order."""
        return [r for m, p, r in self.log if m == "GET" and "/resolve/" in p and p.endswith("/" + filename)]

    def resolve_gets(self) -> int:
        """How many file downloads (GET on ``resolve/``) were asked for."""
        return sum(1 for m, p, _ in self.log if m == "GET" and "/resolve/" in p)


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, obj, code: int = 200) -> None:
            self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json"})

        def _not_found(self, what: str, head: bool = False) -> None:
            self._send(404, json.dumps({"error": what}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": what}, head=head)

        def _route(self, head: bool) -> None:
            with hub._lock:
                hub.log.append((self.command, self.path, self.headers.get("Range")))
                over = len(hub.log) > hub.max_requests
            if over:
                self._send(503, b"request budget spent", head=head)
                return
            path = unquote(urlsplit(self.path).path)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo_id, kind = "/".join(parts[2:4]), parts[4]
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._not_found("RepoNotFound")
                if kind == "revision":
                    return self._json({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                                       "siblings": [{"rfilename": p} for p in repo.files]})
                if kind == "tree":
                    return self._json([repo.entry(p) for p in repo.files])
                return self._not_found("EntryNotFound")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id, filename = "/".join(parts[:2]), "/".join(parts[4:])
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._not_found("RepoNotFound", head)
                if filename not in repo.files:
                    self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}, head=head)
                    return
                return self._file(repo, filename, head)
            return self._not_found("RepoNotFound", head)

        def _file(self, repo: Repo, filename: str, head: bool) -> None:
            data = repo.files[filename]
            name = filename.rsplit("/", 1)[-1]
            if name in hub.corrupt and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{repo.etag(filename)}"',
                       "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            if head:
                self._send(200, data, headers, head=True)
                return
            if name in hub.fail:
                self._send(500, b"internal error", {"X-Repo-Commit": repo.commit})
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                start = int(rng[6:].split("-")[0])
            body = data[start:]
            code = 206 if rng else 200
            if rng:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            with hub._lock:
                drop = name in hub.drop_once and name not in hub._dropped
                if drop:
                    hub._dropped.add(name)
            if not drop:
                self._send(code, body, headers)
                return
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

        def do_GET(self):  # noqa: N802
            self._route(head=False)

        def do_HEAD(self):  # noqa: N802
            self._route(head=True)

    return Handler


class serve:
    """Context manager: run a `HubStandIn` on 127.0.0.1 in a daemon thread.

    ``with serve({"owner/name": Path(dir)}) as hub: ...``; ``hub.endpoint`` is its URL.
    """

    def __init__(self, repos: dict[str, Path], **faults):
        self.hub = HubStandIn({rid: Repo.from_dir(Path(d)) for rid, d in repos.items()}, **faults)

    def __enter__(self) -> HubStandIn:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.server.daemon_threads = True
        self.hub.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.hub

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
