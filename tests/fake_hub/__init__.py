"""A fake Hugging Face Hub: a local HTTP server (stdlib only, 127.0.0.1 only) that speaks the part of the Hub
API the real, unpatched ``huggingface_hub`` client (2.x, httpx2-based) uses to read and update repositories.

    with FakeHub() as hub:                      # or: url = hub.start() ... hub.stop()
        hub.add_token("hf_write", write=True)
        hub.create_repo("org/model", {"README.md": b"---\\nlicense: mit\\n---\\n# Hi\\n"})
        api = HfApi(endpoint=hub.url, token="hf_write")
        api.hf_hub_download("org/model", "README.md", cache_dir=tmp_path)

Endpoints (``{t}`` is ``models``, ``datasets`` or ``spaces``; ``{rev}`` is a branch, a full or >=7-char commit
sha, or ``refs/pr/N`` - URL-encoded as ``refs%2Fpr%2FN`` the way the client sends it, or left raw):

* ``GET  /api/whoami-v2``
* ``GET  /api/{t}/{repo}`` and ``/api/{t}/{repo}/revision/{rev}``  (model_info / repo_info)
* ``HEAD|GET /{repo}/resolve/{rev}/{path}`` (``/datasets/...``, ``/spaces/...`` prefixes too)
* ``POST /api/validate-yaml``
* ``POST /api/{t}/{repo}/preupload/{rev}``   (every file "regular", never LFS)
* ``POST /api/{t}/{repo}/commit/{rev}``      (NDJSON; ``parentCommit`` -> 412 when stale; ``?create_pr=1``)
* ``GET  /api/{t}/{repo}/refs``              (``?include_prs=1``)
* ``GET  /api/{t}/{repo}/tree/{rev}[/{path}]``, ``POST /api/{t}/{repo}/paths-info/{rev}``
* ``POST /api/repos/create``

Errors mirror the Hub: ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound), ``X-Error-Message``
and a JSON ``{"error": message}`` body, which is what ``huggingface_hub.utils.hf_raise_for_status`` parses.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

__all__ = ["FakeHub", "git_blob_oid", "STALE_PARENT_MESSAGE"]

STALE_PARENT_MESSAGE = "A commit has happened since. Please refresh and try again."
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_SHA_RE = re.compile(r"[0-9a-f]{7,40}")
_PR_RE = re.compile(r"refs/pr/(\d+)")


def git_blob_oid(content: bytes) -> str:
    """The git blob sha1 of ``content``: what the Hub sends as ``ETag`` / preupload ``oid`` for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubError(Exception):
    """Raised inside the handler; turned into an error response."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers or {})


class _Commit:
    __slots__ = ("sha", "parent", "summary", "description", "tree", "added", "deleted", "ref", "author", "date")

    def __init__(self, sha, parent, summary, description, tree, added, deleted, ref, author):
        self.sha, self.parent, self.summary, self.description = sha, parent, summary, description
        self.tree: dict[str, bytes] = tree
        self.added, self.deleted, self.ref, self.author = added, deleted, ref, author
        self.date = _now()

    def as_dict(self) -> dict:
        return {
            "sha": self.sha,
            "parent": self.parent,
            "summary": self.summary,
            "description": self.description,
            "ref": self.ref,
            "author": self.author,
            "date": self.date,
            "added": list(self.added),
            "deleted": list(self.deleted),
            "files_changed": sorted(set(self.added) | set(self.deleted)),
        }


class _Repo:
    def __init__(self, repo_type: str, repo_id: str, private: bool):
        self.repo_type, self.repo_id, self.private = repo_type, repo_id, private
        self.refs: dict[str, str] = {}  # "main" / "dev" / "refs/pr/1" -> sha
        self.commits: dict[str, _Commit] = {}
        self.prs: list[dict] = []
        self.created_at = _now()

    def resolve(self, revision: str) -> str | None:
        """Branch, PR ref or (>=7 hex chars) commit sha -> full commit sha."""
        if revision in self.refs:
            return self.refs[revision]
        if revision.startswith("refs/heads/") and revision[11:] in self.refs:
            return self.refs[revision[11:]]
        if _SHA_RE.fullmatch(revision):
            hits = [sha for sha in self.commits if sha.startswith(revision)]
            if len(hits) == 1:
                return hits[0]
        return None


class FakeHub:
    """In-memory Hub + HTTP server. Thread-safe; all state is behind one lock."""

    def __init__(self, host: str = "127.0.0.1"):
        if host != "127.0.0.1":
            raise ValueError("FakeHub only binds 127.0.0.1")
        self.host = host
        self.url: str | None = None
        self.requests: list[dict] = []
        self.omit_repo_commit_header = False
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._tokens: dict[str, dict] = {}
        self._faults: list[dict] = []
        self._delays: list[dict] = []
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{self.host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="FakeHub", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes delayed handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "FakeHub":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ test setup
    def add_token(self, token: str, write: bool = True, user: str = "fake-user") -> None:
        with self._lock:
            self._tokens[token] = {"write": write, "user": user}

    def create_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | str] | None = None,
        private: bool = False,
        repo_type: str = "model",
        summary: str = "initial commit",
    ) -> str:
        """Create a repo whose ``main`` has one commit holding exactly ``files``; returns that commit sha."""
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                raise ValueError(f"repo {repo_type}:{repo_id} exists")
            repo = _Repo(repo_type, repo_id, private)
            self._repos[key] = repo
            commit = self._apply(repo, "main", None, summary, "", _as_bytes(files or {}), [], author="fake-hub")
            repo.refs["main"] = commit.sha
            return commit.sha

    def create_branch(self, repo_id: str, branch: str, from_revision: str = "main", repo_type: str = "model") -> str:
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            sha = repo.resolve(from_revision)
            if sha is None:
                raise KeyError(from_revision)
            repo.refs[branch] = sha
            return sha

    def commit_externally(
        self,
        repo_id: str,
        files: dict[str, bytes | str | None],
        revision: str = "main",
        summary: str = "external edit",
        repo_type: str = "model",
    ) -> str:
        """Simulate someone else committing (``None`` value = delete that path); returns the new head sha."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            if revision not in repo.refs:
                raise KeyError(revision)
            adds = {p: c for p, c in files.items() if c is not None}
            dels = [p for p, c in files.items() if c is None]
            commit = self._apply(repo, revision, repo.refs[revision], summary, "", _as_bytes(adds), dels, "someone-else")
            repo.refs[revision] = commit.sha
            return commit.sha

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        message: str = "Injected failure",
        count: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``count`` requests whose method matches (``"*"`` = any) and whose URL-decoded path matches
        ``re.search(path_regex)`` get ``status`` + ``{"error": message}`` + ``X-Error-Message: message``."""
        with self._lock:
            self._faults.append(
                {"method": method.upper(), "re": re.compile(path_regex), "status": status, "message": message,
                 "count": count, "headers": dict(headers or {})}
            )

    def delay_next(self, method: str, path_regex: str, seconds: float, count: int = 1) -> None:
        """Sleep ``seconds`` before answering the next ``count`` matching requests (answered normally after)."""
        with self._lock:
            self._delays.append({"method": method.upper(), "re": re.compile(path_regex), "seconds": seconds,
                                 "count": count})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    # ------------------------------------------------------------------ assertions
    def file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes | None:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
            sha = repo.resolve(revision) if repo else None
            return None if sha is None else repo.commits[sha].tree.get(path)  # type: ignore[union-attr]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            sha = repo.resolve(revision)
            if sha is None:
                raise KeyError(revision)
            return dict(repo.commits[sha].tree)

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        with self._lock:
            sha = self._repo(repo_id, repo_type).resolve(revision)
            if sha is None:
                raise KeyError(revision)
            return sha

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[dict]:
        """History reachable from ``revision``, newest first (like ``git log`` / ``list_repo_commits``)."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            sha = repo.resolve(revision)
            out = []
            while sha is not None:
                commit = repo.commits[sha]
                out.append(commit.as_dict())
                sha = commit.parent
            return out

    def pull_requests(self, repo_id: str, repo_type: str = "model") -> list[dict]:
        """``[{"num", "ref", "head", "base", "target", "title", "url"}]`` (``head`` is the PR ref's current sha)."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            return [dict(pr, head=repo.refs[pr["ref"]]) for pr in repo.prs]

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    # ------------------------------------------------------------------ internals
    def _repo(self, repo_id: str, repo_type: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r}")
        return repo

    def _apply(self, repo, ref, parent, summary, description, adds, deletes, author) -> _Commit:
        tree = dict(repo.commits[parent].tree) if parent else {}
        for path in deletes:
            tree.pop(path, None)
        changed = [p for p, c in adds.items() if tree.get(p) != c]
        tree.update(adds)
        self._counter += 1
        seed = json.dumps([repo.repo_id, parent, summary, self._counter, time.time_ns(), sorted(tree)]).encode()
        sha = hashlib.sha1(seed).hexdigest()
        commit = _Commit(sha, parent, summary, description, tree, changed, list(deletes), ref, author)
        repo.commits[sha] = commit
        return commit

    def _take(self, rules: list[dict], method: str, path: str) -> dict | None:
        with self._lock:
            for rule in rules:
                if rule["method"] in ("*", method) and rule["re"].search(path):
                    rule["count"] -= 1
                    if rule["count"] <= 0:
                        rules.remove(rule)
                    return rule
        return None


def _as_bytes(files: dict) -> dict[str, bytes]:
    return {p: (c.encode() if isinstance(c, str) else bytes(c)) for p, c in files.items()}


def _front_matter(text: str) -> Any:
    """YAML between a leading ``---`` line and the next ``---`` line; None when there is no front matter."""
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, flags=re.S)
    if match is None:
        return None
    return yaml.safe_load(match.group(1))


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    # every verb goes through _dispatch
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    # ---------------------------------------------------------------- plumbing
    def _dispatch(self) -> None:
        hub = self.hub
        split = urlsplit(self.path)
        self.raw_path = split.path
        self.decoded_path = unquote(split.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.record = {
            "method": self.command,
            "path": self.decoded_path,
            "raw_path": self.raw_path,
            "query": dict(self.query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": self.body,
            "status": None,
            "time": time.time(),
        }
        with hub._lock:
            hub.requests.append(self.record)
        delay = hub._take(hub._delays, self.command, self.decoded_path)
        if delay is not None and hub._stopping.wait(delay["seconds"]):
            return
        fault = hub._take(hub._faults, self.command, self.decoded_path)
        try:
            if fault is not None:
                raise HubError(fault["status"], fault["message"], headers=fault["headers"])
            status, headers, body = self._route()
            self._send(status, headers, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send_json(err.status, {"error": err.message}, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug in the fake: make it loud but keep serving
            try:
                self._send_json(500, {"error": f"FakeHub internal error: {exc!r}"}, {})
            except OSError:
                pass

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.record["status"] = status
        self.send_response(status)
        headers = dict(headers)
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("X-Request-Id", f"fake-{id(self.record):x}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, data: Any, headers: dict | None = None) -> None:
        self._send(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
                   json.dumps(data).encode())

    def _json(self, status: int, data: Any, headers: dict | None = None):
        return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, json.dumps(data).encode()

    @property
    def base(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.hub.url  # type: ignore[return-value]

    # ---------------------------------------------------------------- auth
    def _token(self) -> dict | None:
        """The caller's token record; None when anonymous. Unknown token -> 401 (like the Hub)."""
        auth = self.headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else auth.strip()
        with self.hub._lock:
            info = self.hub._tokens.get(token)
        if info is None:
            raise HubError(401, INVALID_TOKEN_MESSAGE)
        return info

    def _require_write(self) -> dict:
        info = self._token()
        if info is None:
            raise HubError(401, "You must be authenticated to write to a repository (no token sent).")
        if not info["write"]:
            raise HubError(403, "You don't have the rights to write to this repository: the token is read-only."
                                " Use a token with the write role")
        return info

    def _read_repo(self, repo_type: str, repo_id: str) -> _Repo:
        info = self._token()
        with self.hub._lock:
            repo = self.hub._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and info is None):
            raise HubError(401 if info is None and repo is not None else 404, "Repository not found", "RepoNotFound")
        return repo

    # ---------------------------------------------------------------- routing
    def _route(self):
        parts = self.raw_path.split("/")[1:]  # raw segments: revisions stay one segment while %2F-encoded
        seg = [unquote(p) for p in parts]
        method = self.command
        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami()
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if len(seg) >= 3 and seg[0] == "api" and seg[1] in REPO_TYPES:
            repo_type = REPO_TYPES[seg[1]]
            repo_id, action, rest = self._split_repo(repo_type, seg[2:], ("revision", "preupload", "commit", "refs",
                                                                          "tree", "paths-info"))
            if action is None and method == "GET":
                return self._info(repo_type, repo_id, "main", explicit=False)
            if action == "revision" and method == "GET" and rest:
                return self._info(repo_type, repo_id, self._rev(rest), explicit=True)
            if action == "refs" and method == "GET":
                return self._refs(repo_type, repo_id)
            if action == "preupload" and method == "POST":
                return self._preupload(repo_type, repo_id, self._rev(rest) if rest else "main")
            if action == "commit" and method == "POST":
                return self._commit(repo_type, repo_id, self._rev(rest) if rest else "main")
            if action == "tree" and method == "GET":
                rev = self._rev(rest[:1]) if rest else "main"
                return self._tree(repo_type, repo_id, rev, "/".join(rest[1:]))
            if action == "paths-info" and method == "POST":
                return self._paths_info(repo_type, repo_id, self._rev(rest) if rest else "main")
        if method in ("GET", "HEAD") and "resolve" in seg:
            repo_type = "model"
            body = seg
            if seg and seg[0] in REPO_TYPES and seg[0] != "models":
                repo_type, body = REPO_TYPES[seg[0]], seg[1:]
            repo_id, action, rest = self._split_repo(repo_type, body, ("resolve",))
            if action == "resolve" and rest:
                rev, path = self._rev_and_path(rest)
                return self._resolve(repo_type, repo_id, rev, path)
        raise HubError(404, f"Sorry, we can't find the page you are looking for ({method} {self.decoded_path}).")

    def _split_repo(self, repo_type: str, seg: list[str], actions: tuple[str, ...]):
        """``ns/name/<action>/...`` or ``name/<action>/...``: prefer the reading whose repo exists."""
        candidates = []
        for n in (2, 1):
            if len(seg) >= n and (len(seg) == n or seg[n] in actions):
                candidates.append(("/".join(seg[:n]), seg[n] if len(seg) > n else None, seg[n + 1:]))
        if not candidates:
            raise HubError(404, f"Sorry, we can't find the page you are looking for ({self.decoded_path}).")
        with self.hub._lock:
            for cand in candidates:
                if (repo_type, cand[0]) in self.hub._repos:
                    return cand
        return candidates[0]

    @staticmethod
    def _rev(rest: list[str]) -> str:
        """Revision from the segments after the action: ``refs%2Fpr%2F1`` arrives as one segment, raw
        ``refs/pr/1`` as three."""
        if len(rest) >= 3 and rest[0] == "refs" and rest[1] in ("pr", "heads", "convert"):
            return "/".join(rest[:3])
        return rest[0]

    @staticmethod
    def _rev_and_path(rest: list[str]) -> tuple[str, str]:
        if len(rest) >= 4 and rest[0] == "refs" and rest[1] in ("pr", "heads", "convert"):
            return "/".join(rest[:3]), "/".join(rest[3:])
        return rest[0], "/".join(rest[1:])

    def _resolve_rev(self, repo: _Repo, revision: str) -> str:
        with self.hub._lock:
            sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    # ---------------------------------------------------------------- endpoints
    def _whoami(self):
        info = self._token()
        if info is None:
            raise HubError(401, "Invalid username or password.")
        role = "write" if info["write"] else "read"
        return self._json(200, {
            "type": "user", "id": f"id-{info['user']}", "name": info["user"], "fullname": info["user"],
            "email": f"{info['user']}@example.invalid", "emailVerified": True, "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": f"fake-{role}", "role": role}},
        })

    def _validate_yaml(self):
        try:
            payload = json.loads(self.body or b"{}")
            content = payload["content"]
        except (ValueError, KeyError, TypeError):
            raise HubError(400, "Expected a JSON body with a 'content' string") from None
        try:
            meta = _front_matter(content)
        except yaml.YAMLError as exc:
            message = f"Invalid YAML in README.md metadata: {exc}".replace("\n", " ")
            return self._json(400, {"error": message, "errors": [{"message": message}]}, {"X-Error-Message": message})
        if meta is not None and not isinstance(meta, dict):
            message = "Invalid metadata in README.md: YAML front matter must be a mapping"
            return self._json(400, {"error": message, "errors": [{"message": message}]}, {"X-Error-Message": message})
        return self._json(200, {})

    def _info(self, repo_type: str, repo_id: str, revision: str, explicit: bool):
        repo = self._read_repo(repo_type, repo_id)
        sha = self._resolve_rev(repo, revision)
        with self.hub._lock:
            commit = repo.commits[sha]
            tree = dict(commit.tree)
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path in sorted(tree):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=len(tree[path]), blobId=git_blob_oid(tree[path]))
            siblings.append(sib)
        data: dict[str, Any] = {
            "_id": hashlib.md5(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            data["modelId"] = repo_id
        if "README.md" in tree:
            try:
                meta = _front_matter(tree["README.md"].decode("utf-8", "replace"))
            except yaml.YAMLError:
                meta = None
            if isinstance(meta, dict):
                data["cardData"] = meta
                tags = meta.get("tags")
                if isinstance(tags, list):
                    data["tags"] = [str(t) for t in tags]
        return self._json(200, data)

    def _refs(self, repo_type: str, repo_id: str):
        repo = self._read_repo(repo_type, repo_id)
        with self.hub._lock:
            refs = dict(repo.refs)
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in refs.items()
                    if not n.startswith("refs/")]
        data: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if self.query.get("include_prs", "").lower() in ("1", "true"):
            data["pullRequests"] = [{"name": n, "ref": n, "targetCommit": s} for n, s in refs.items()
                                    if n.startswith("refs/pr/")]
        return self._json(200, data)

    def _tree_at(self, repo_type: str, repo_id: str, revision: str) -> dict[str, bytes]:
        repo = self._read_repo(repo_type, repo_id)
        sha = self._resolve_rev(repo, revision)
        with self.hub._lock:
            return dict(repo.commits[sha].tree)

    def _tree(self, repo_type: str, repo_id: str, revision: str, prefix: str):
        tree = self._tree_at(repo_type, repo_id, revision)
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        entries: dict[str, dict] = {}
        for path, content in sorted(tree.items()):
            if not path.startswith(base):
                continue
            rel = path[len(base):].split("/")
            for depth in range(1, len(rel)):
                folder = base + "/".join(rel[:depth])
                if depth == 1 or recursive:
                    entries.setdefault(folder, {"type": "directory", "path": folder, "size": 0,
                                                "oid": hashlib.sha1(folder.encode()).hexdigest()})
                if not recursive:
                    break
            if len(rel) == 1 or recursive:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)}
        if prefix and not entries:
            raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
        return self._json(200, [entries[k] for k in sorted(entries)])

    def _paths_info(self, repo_type: str, repo_id: str, revision: str):
        tree = self._tree_at(repo_type, repo_id, revision)
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(self.body or b"{}").get("paths", [])
        else:
            paths = parse_qs(self.body.decode()).get("paths", [])
        out = []
        for path in paths:
            if path in tree:
                out.append({"type": "file", "path": path, "size": len(tree[path]), "oid": git_blob_oid(tree[path])})
            elif any(p.startswith(path.rstrip("/") + "/") for p in tree):
                out.append({"type": "directory", "path": path, "size": 0,
                            "oid": hashlib.sha1(path.encode()).hexdigest()})
        return self._json(200, out)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str):
        repo = self._read_repo(repo_type, repo_id)
        sha = self._resolve_rev(repo, revision)
        with self.hub._lock:
            content = repo.commits[sha].tree.get(path)
        commit_header = {} if self.hub.omit_repo_commit_header else {"X-Repo-Commit": sha}
        if content is None:
            raise HubError(404, "Entry not found", "EntryNotFound", headers=commit_header)
        headers = {
            **commit_header,
            "ETag": f'"{git_blob_oid(content)}"',
            "Content-Type": "text/plain; charset=utf-8" if path.endswith((".md", ".txt", ".json", ".yaml", ".yml"))
            else "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        status, body = 200, content
        rng = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if match and content and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(content) - 1
            else:  # suffix range
                start, end = max(len(content) - int(match.group(2)), 0), len(content) - 1
            end = min(end, len(content) - 1)
            if start >= len(content) or start > end:
                raise HubError(416, "Requested range not satisfiable",
                               headers={**commit_header, "Content-Range": f"bytes */{len(content)}"})
            status, body = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        return status, headers, body

    def _create_repo(self):
        info = self._require_write()
        try:
            payload = json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Expected a JSON body") from None
        name, org = payload.get("name"), payload.get("organization")
        if not name:
            raise HubError(400, "Missing repo name")
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{org or info['user']}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        url = f"{self.base}/{_URL_PREFIX[repo_type]}{repo_id}"
        try:
            self.hub.create_repo(repo_id, {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"},
                                 private=private, repo_type=repo_type)
        except ValueError:
            raise HubError(409, f"You already created this {repo_type} repo", headers={}) from None
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _writable_repo(self, repo_type: str, repo_id: str) -> _Repo:
        info = self._require_write()
        with self.hub._lock:
            repo = self.hub._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _preupload(self, repo_type: str, repo_id: str, revision: str):
        repo = self._writable_repo(repo_type, repo_id)
        sha = self._resolve_rev(repo, revision)
        try:
            files = json.loads(self.body or b"{}")["files"]
        except (ValueError, KeyError, TypeError):
            raise HubError(400, "Expected a JSON body with 'files'") from None
        with self.hub._lock:
            tree = repo.commits[sha].tree
            out = []
            for item in files:
                entry = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
                if item["path"] in tree:
                    entry["oid"] = git_blob_oid(tree[item["path"]])
                out.append(entry)
        return self._json(200, {"files": out, "commitOid": sha})

    def _commit(self, repo_type: str, repo_id: str, revision: str):
        info = self._require_write()
        hub = self.hub
        with hub._lock:
            repo = hub._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        header, adds, deletes, folders = self._parse_ndjson()
        create_pr = self.query.get("create_pr", "").lower() in ("1", "true")
        prefix = f"{self.base}/{_URL_PREFIX[repo_type]}{repo_id}"
        parent_req = header.get("parentCommit")
        with hub._lock:  # apply atomically
            if revision.startswith("refs/heads/"):
                revision = revision[11:]
            if revision not in repo.refs:
                if repo.resolve(revision) is not None:
                    raise HubError(400, f"Cannot commit to {revision}: not a branch or a pull request ref")
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.refs[revision]
            if create_pr:
                base = head
                if parent_req:
                    base = repo.resolve(parent_req)
                    if base is None:
                        raise HubError(412, f"Invalid parent commit: {parent_req}")
            else:
                if parent_req and not head.startswith(parent_req):
                    raise HubError(412, STALE_PARENT_MESSAGE)
                base = head
            tree = repo.commits[base].tree
            missing = [p for p in deletes if p not in tree]
            if missing:
                raise HubError(404, f"A file with this name doesn't exist: {missing[0]}", "EntryNotFound")
            for folder in folders:
                under = [p for p in tree if p.startswith(folder.rstrip("/") + "/")]
                if not under:
                    raise HubError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
                deletes.extend(under)
            if create_pr:
                num = 1 + max([pr["num"] for pr in repo.prs], default=0)
                ref = f"refs/pr/{num}"
            else:
                ref = revision
            commit = hub._apply(repo, ref, base, header.get("summary") or "", header.get("description") or "",
                                adds, deletes, info["user"])
            repo.refs[ref] = commit.sha
            pr_match = _PR_RE.fullmatch(ref)
            if create_pr:
                repo.prs.append({"num": num, "ref": ref, "base": base, "target": revision,
                                 "title": commit.summary, "url": f"{prefix}/discussions/{num}"})
        data = {
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{prefix}/commit/{commit.sha}",
            "commitMessage": commit.summary,
            "hookOutput": "",
        }
        if pr_match:
            data["pullRequestUrl"] = f"{prefix}/discussions/{pr_match.group(1)}"
        return self._json(200, data)

    def _parse_ndjson(self):
        header: dict | None = None
        adds: dict[str, bytes] = {}
        deletes: list[str] = []
        folders: list[str] = []
        try:
            lines = [json.loads(line) for line in self.body.decode("utf-8").splitlines() if line.strip()]
        except ValueError:
            raise HubError(400, "Invalid NDJSON commit payload") from None
        for item in lines:
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                content = value.get("content", "")
                if value.get("encoding", "utf-8") == "base64":
                    try:
                        adds[value["path"]] = base64.b64decode(content, validate=True)
                    except ValueError:
                        raise HubError(400, f"Invalid base64 content for {value.get('path')}") from None
                else:
                    adds[value["path"]] = content.encode()
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                folders.append(value["path"])
            elif key == "lfsFile":
                raise HubError(400, f"FakeHub does not store LFS files ({value.get('path')}); preupload always "
                                    "answers 'regular'")
            else:
                raise HubError(400, f"Unknown commit operation key {key!r}")
        if header is None:
            raise HubError(400, "Missing commit header")
        return header, adds, deletes, folders


def hub_url(hub: FakeHub, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> str:
    """Resolve URL as the client builds it (revision and path quoted)."""
    return f"{hub.url}/{_URL_PREFIX[repo_type]}{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"
