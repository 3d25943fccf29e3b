"""A local HTTP server that speaks the Hugging Face Hub endpoints ``huggingface_hub`` uses to read and
update a model card, for tests (stdlib only; binds 127.0.0.1 only).

Endpoints: model info (``/api/models/{repo}[/revision/{rev}]``), file resolve (HEAD/GET
``/{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit`` and a per-content ``ETag``), ``/api/validate-yaml``,
preupload (every file "regular"), NDJSON commit (``parentCommit`` checked -> 412; ``create_pr=1`` ->
``refs/pr/N``), ``/api/whoami-v2``. Errors carry ``X-Error-Code`` / ``X-Error-Message`` as the Hub's do.

Test controls: ``add_token``, ``create_repo``, ``file``, ``head``, ``commits``, ``pull_requests``,
``commit_externally``, ``fail_next``, ``on_request``, ``omit_repo_commit_header``, ``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

STALE_PARENT = "A commit has happened since. Please refresh and try again."


def _sha(*parts: bytes) -> str:
    return hashlib.sha1(b"".join(parts) + str(time.monotonic_ns()).encode()).hexdigest()


class _Repo:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.commits: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, str] = {}
        self.prs: list[dict[str, Any]] = []
        sha = _sha(b"initial")
        self.commits[sha] = {"sha": sha, "parent": None, "summary": "initial commit", "files": dict(files), "changed": sorted(files)}
        self.refs["main"] = sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        matches = [sha for sha in self.commits if sha.startswith(revision)] if len(revision) >= 7 else []
        return matches[0] if len(matches) == 1 else None


class FakeHub:
    """The server and its state. ``with FakeHub() as hub: hub.url ...``."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.tokens: dict[str, bool] = {}  # token -> may write
        self.requests: list[dict[str, Any]] = []
        self.omit_repo_commit_header = False
        self._faults: list[dict[str, Any]] = []
        self._hooks: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # polling every 50 ms, not the default 0.5 s: stop() (shutdown) waits for the loop to notice
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------------------
    def add_token(self, token: str, write: bool = True) -> None:
        self.tokens[token] = write

    def create_repo(self, repo_id: str, files: dict[str, bytes] | None = None) -> None:
        with self._lock:
            self.repos[repo_id] = _Repo(files or {})

    def head(self, repo_id: str, revision: str = "main") -> str:
        return self.repos[repo_id].resolve(revision)  # type: ignore[return-value]

    def file(self, repo_id: str, path: str, revision: str = "main") -> bytes | None:
        repo = self.repos[repo_id]
        sha = repo.resolve(revision)
        return None if sha is None else repo.commits[sha]["files"].get(path)

    def commits(self, repo_id: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "files"} for c in self.repos[repo_id].commits.values()]

    def pull_requests(self, repo_id: str) -> list[dict[str, Any]]:
        return list(self.repos[repo_id].prs)

    def commit_externally(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Someone else commits ``files`` to ``revision`` (to test concurrent edits)."""
        with self._lock:
            repo = self.repos[repo_id]
            return self._apply(repo, revision, repo.refs[revision], files, [], "an edit by someone else")

    def fail_next(self, method: str, path_regex: str, status: int, message: str = "simulated Hub error", count: int = 1, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        """The next ``count`` requests matching ``method`` and ``path_regex`` get ``status`` and ``message``
        (after ``delay_s`` seconds: a delay longer than the client's timeout simulates a timeout)."""
        self._faults.append({"method": method, "re": re.compile(path_regex), "status": status, "message": message, "count": count, "headers": headers or {}, "delay_s": delay_s})

    def on_request(self, method: str, path_regex: str, callback: Callable[[], Any], once: bool = True) -> None:
        """Run ``callback`` after a matching request has been answered."""
        self._hooks.append({"method": method, "re": re.compile(path_regex), "callback": callback, "once": once})

    # -- internals -----------------------------------------------------------------------------------
    def _apply(self, repo: _Repo, branch: str, parent: str, files: dict[str, bytes], deleted: list[str], summary: str) -> str:
        tree = dict(repo.commits[parent]["files"])
        tree.update(files)
        for path in deleted:
            tree.pop(path, None)
        sha = _sha(parent.encode(), summary.encode())
        repo.commits[sha] = {"sha": sha, "parent": parent, "summary": summary, "files": tree, "changed": sorted([*files, *deleted])}
        repo.refs[branch] = sha
        return sha


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": " ".join(message.split())}  # a header is one line
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _handle(self) -> None:
        hub = self.hub
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        body = self._body() if self.command == "POST" else b""
        hub.requests.append({"method": self.command, "path": path, "query": query, "headers": dict(self.headers), "body": body})
        for fault in hub._faults:
            if fault["count"] > 0 and fault["method"] == self.command and fault["re"].search(path):
                fault["count"] -= 1
                time.sleep(fault["delay_s"])
                self._json(fault["status"], {"error": fault["message"]}, {"X-Error-Message": fault["message"], **fault["headers"]})
                return
        token = self._token()
        if token is not None and token not in hub.tokens:
            self._error(401, "Invalid credentials in Authorization header")
            return
        try:
            self._route(path, query, body, token)
        finally:
            for hook in list(hub._hooks):
                if hook["method"] == self.command and hook["re"].search(path):
                    if hook["once"]:
                        hub._hooks.remove(hook)
                    hook["callback"]()

    def _repo(self, repo_id: str) -> _Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
        return repo

    def _route(self, path: str, query: dict[str, list[str]], body: bytes, token: str | None) -> None:
        hub = self.hub
        if path == "/api/whoami-v2":
            if token is None:
                self._error(401, "Invalid credentials in Authorization header")
            else:
                self._json(200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write" if hub.tokens[token] else "read"}}})
            return
        if path == "/api/validate-yaml" and self.command == "POST":
            content = json.loads(body)["content"]  # the whole README: its front matter is checked
            front = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", content, re.S)
            try:
                yaml.safe_load(front.group(1) if front else "")
                self._json(200, {})
            except yaml.YAMLError as exc:
                self._error(400, f"Invalid YAML in README.md: {exc}")
            return
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if m and self.command == "GET":
            return self._model_info(m.group(1), m.group(2) or "main")
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/(.+)", path)
        if m and self.command == "POST":
            if token is None or not hub.tokens.get(token, False):
                status, message = (401, "Invalid credentials in Authorization header") if token is None else (403, "You don't have the rights to write to this repository")
                self._error(status, message)
                return
            if m.group(2) == "preupload":
                return self._preupload(m.group(1), body)
            return self._commit(m.group(1), m.group(3), body, query.get("create_pr") == ["1"])
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/(refs/pr/\d+|[^/]+)/(.+)", path)
        if m and self.command in ("GET", "HEAD"):
            return self._resolve(m.group(1), m.group(2), m.group(3))
        self._error(404, f"no such endpoint: {self.command} {path}")

    # -- endpoints -----------------------------------------------------------------------------------
    def _commit_at(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit sha, files) that ``revision`` of ``repo_id`` points to; answers 404 and returns None if none."""
        repo = self._repo(repo_id)
        if repo is None:
            return None
        with self.hub._lock:
            sha = repo.resolve(revision)
            if sha is None:
                self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
                return None
            return sha, dict(repo.commits[sha]["files"])

    def _model_info(self, repo_id: str, revision: str) -> None:
        found = self._commit_at(repo_id, revision)
        if found is None:
            return
        sha, files = found
        self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "siblings": [{"rfilename": f} for f in sorted(files)], "tags": [], "downloads": 0, "likes": 0})

    def _resolve(self, repo_id: str, revision: str, file_path: str) -> None:
        found = self._commit_at(repo_id, revision)
        if found is None:
            return
        sha, files = found
        headers = {} if self.hub.omit_repo_commit_header else {"X-Repo-Commit": sha}
        data = files.get(file_path)
        if data is None:
            error = {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", **headers}
            self._send(404, json.dumps({"error": "Entry not found"}).encode(), error)
            return
        etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self._send(200, data, {**headers, "ETag": f'"{etag}"'}, content_type="application/octet-stream")

    def _preupload(self, repo_id: str, body: bytes) -> None:
        if self._repo(repo_id) is None:
            return
        files = json.loads(body).get("files", [])
        self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]})

    def _commit(self, repo_id: str, revision: str, body: bytes, create_pr: bool) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((e["value"] for e in lines if e["key"] == "header"), {})
        files = {e["value"]["path"]: base64.b64decode(e["value"]["content"]) for e in lines if e["key"] == "file"}
        deleted = [e["value"]["path"] for e in lines if e["key"] == "deletedFile"]
        with self.hub._lock:
            head = repo.resolve(revision)
            if head is None:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and parent != head:
                return self._error(412, STALE_PARENT)
            branch = revision
            pr_url = None
            if create_pr:
                number = len(repo.prs) + 1
                branch = f"refs/pr/{number}"
                repo.refs[branch] = head
                repo.prs.append({"num": number, "ref": branch, "title": header.get("summary", "")})
                pr_url = f"{self.hub.url}/{repo_id}/discussions/{number}"
            elif branch not in repo.refs:
                branch = next((b for b, s in repo.refs.items() if s == head), "main")
            sha = self.hub._apply(repo, branch, head, files, deleted, header.get("summary", ""))
            if create_pr:
                repo.prs[-1]["head"] = sha
        self._json(200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": pr_url, "success": True})

    do_GET = do_HEAD = do_POST = _handle
