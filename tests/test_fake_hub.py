"""The fake Hub (tests/fake_hub) driven by the real, unpatched huggingface_hub client over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    FileMetadataError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fake_hub import STALE_PARENT_MESSAGE, FakeHub, git_blob_oid, hub_url

REPO = "acme/tiny-model"
README = b"---\nlicense: mit\ntags:\n- carbon\n---\n# Tiny model\n"
WRITE, READ = "hf_fake_write", "hf_fake_read"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # never the user's token/cache
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as fake:
        fake.add_token(WRITE, write=True, user="writer")
        fake.add_token(READ, write=False, user="reader")
        fake.create_repo(REPO, {"README.md": README, "config.json": b"{}"})
        yield fake


@pytest.fixture
def api(hub):
    return HfApi(endpoint=hub.url, token=WRITE)


def test_binds_loopback_and_records_requests(hub, api):
    assert hub.url.startswith("http://127.0.0.1:")
    api.model_info(REPO)
    req = hub.requests[-1]
    assert (req["method"], req["path"], req["status"]) == ("GET", f"/api/models/{REPO}", 200)
    assert req["headers"]["authorization"] == f"Bearer {WRITE}"


def test_download_readme_returns_bytes_and_commit(hub, api, tmp_path):
    path = api.hf_hub_download(REPO, "README.md", cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == README
    assert f"snapshots/{hub.head(REPO)}/README.md" in Path(path).as_posix()
    meta = api.get_hf_file_metadata(url=hub_url(hub, REPO, "README.md"))
    assert (meta.commit_hash, meta.etag, meta.size) == (hub.head(REPO), git_blob_oid(README), len(README))
    # module-level function, anonymous read of a public repo
    path2 = hf_hub_download(REPO, "config.json", endpoint=hub.url, token=False, cache_dir=tmp_path / "c2")
    assert Path(path2).read_bytes() == b"{}"
    assert "authorization" not in hub.requests[-1]["headers"]


def test_missing_file_repo_and_revision(hub, api, tmp_path):
    with pytest.raises(RemoteEntryNotFoundError) as info:
        api.hf_hub_download(REPO, "nope.txt", cache_dir=tmp_path)
    assert isinstance(info.value, EntryNotFoundError) and info.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        api.hf_hub_download("acme/missing", "README.md", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.hf_hub_download(REPO, "README.md", revision="no-such-branch", cache_dir=tmp_path)


def test_model_info(hub, api):
    info = api.model_info(REPO)
    assert info.id == REPO and info.sha == hub.head(REPO) and info.private is False
    assert sorted(s.rfilename for s in info.siblings) == ["README.md", "config.json"]
    assert info.card_data.license == "mit" and info.tags == ["carbon"]
    assert api.model_info(REPO, revision=hub.head(REPO)).sha == hub.head(REPO)
    assert api.repo_info(REPO).sha == hub.head(REPO)


def test_commit_with_parent_updates_main(hub, api):
    head = hub.head(REPO)
    new = README.replace(b"mit", b"apache-2.0")
    info = api.create_commit(
        REPO,
        operations=[CommitOperationAdd("README.md", new), CommitOperationDelete("config.json")],
        commit_message="Update card",
        commit_description="body",
        parent_commit=head,
    )
    assert info.oid == hub.head(REPO) != head and len(info.oid) == 40
    assert info.commit_url == f"{hub.url}/{REPO}/commit/{info.oid}"
    assert hub.file(REPO, "README.md") == new and hub.file(REPO, "config.json") is None
    latest = hub.commits(REPO)[0]
    assert (latest["summary"], latest["description"], latest["parent"]) == ("Update card", "body", head)
    assert latest["files_changed"] == ["README.md", "config.json"]
    paths = [r["path"] for r in hub.requests if r["method"] == "POST"]
    assert paths == ["/api/validate-yaml", f"/api/models/{REPO}/preupload/main", f"/api/models/{REPO}/commit/main"]


def test_stale_parent_commit_is_412(hub, api):
    head = hub.head(REPO)
    hub.commit_externally(REPO, {"config.json": b'{"a": 1}'})
    with pytest.raises(HfHubHTTPError) as info:
        api.create_commit(REPO, operations=[CommitOperationAdd("x.txt", b"x")], commit_message="m",
                          parent_commit=head)
    assert info.value.response.status_code == 412
    assert STALE_PARENT_MESSAGE in str(info.value)
    assert hub.file(REPO, "x.txt") is None


def test_create_pr_leaves_main_untouched(hub, api, tmp_path):
    head = hub.head(REPO)
    info = api.create_commit(REPO, operations=[CommitOperationAdd("README.md", b"# new\n")],
                             commit_message="PR 1", create_pr=True)
    assert info.pr_url == f"{hub.url}/{REPO}/discussions/1"
    assert (info.pr_revision, info.pr_num) == ("refs/pr/1", 1)
    assert hub.head(REPO) == head and hub.file(REPO, "README.md") == README
    assert hub.file(REPO, "README.md", revision="refs/pr/1") == b"# new\n"
    [pr] = hub.pull_requests(REPO)
    assert (pr["num"], pr["ref"], pr["head"], pr["base"]) == (1, "refs/pr/1", info.oid, head)
    # appending to the PR ref (revision is sent URL-encoded: refs%2Fpr%2F1)
    info2 = api.create_commit(REPO, operations=[CommitOperationAdd("b.txt", b"b")], commit_message="more",
                              revision="refs/pr/1")
    assert hub.requests[-1]["raw_path"] == f"/api/models/{REPO}/commit/refs%2Fpr%2F1"
    assert hub.head(REPO, "refs/pr/1") == info2.oid and hub.head(REPO) == head
    path = api.hf_hub_download(REPO, "b.txt", revision="refs/pr/1", cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"b"
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", head)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", info2.oid)]
    info3 = api.create_commit(REPO, operations=[CommitOperationAdd("c.txt", b"c")], commit_message="PR 2",
                              create_pr=True)
    assert info3.pr_num == 2 and hub.file(REPO, "b.txt", revision="refs/pr/2") is None


def test_invalid_readme_yaml_is_rejected_before_commit(hub, api):
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.create_commit(REPO, operations=[CommitOperationAdd("README.md", b"---\nlicense: [mit\n---\n")],
                          commit_message="bad")
    assert not any(r["path"].endswith("/commit/main") for r in hub.requests)


def test_auth_errors(hub, api):
    op = [CommitOperationAdd("x.txt", b"x")]
    with pytest.raises(HfHubHTTPError) as info:  # unknown token
        HfApi(endpoint=hub.url, token="hf_bogus").create_commit(REPO, operations=op, commit_message="m")
    assert info.value.response.status_code == 401
    assert type(info.value) is HfHubHTTPError  # http:// URLs never get the 401 -> RepositoryNotFoundError mapping
    with pytest.raises(HfHubHTTPError) as info:  # read-only token
        HfApi(endpoint=hub.url, token=READ).create_commit(REPO, operations=op, commit_message="m")
    assert info.value.response.status_code == 403 and "read-only" in str(info.value)
    with pytest.raises(HfHubHTTPError) as info:  # no token at all
        HfApi(endpoint=hub.url, token=False).create_commit(REPO, operations=op, commit_message="m")
    assert info.value.response.status_code == 401
    assert HfApi(endpoint=hub.url, token=READ).model_info(REPO).sha == hub.head(REPO)  # reads are fine
    assert api.whoami()["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError, match="Invalid user token") as info:
        HfApi(endpoint=hub.url, token="hf_bogus").whoami()
    assert info.value.response.status_code == 401
    assert hub.file(REPO, "x.txt") is None


def test_private_repo(hub, tmp_path):
    hub.create_repo("acme/secret", {"a.txt": b"a"}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).model_info("acme/secret")
    assert HfApi(endpoint=hub.url, token=READ).model_info("acme/secret").private is True


def test_injected_5xx_surfaces_message(hub, api):
    hub.fail_next("GET", r"^/api/models/", 503, message="Hub is down for maintenance")
    with pytest.raises(HfHubHTTPError) as info:
        api.model_info(REPO)
    assert info.value.response.status_code == 503
    assert "Hub is down for maintenance" in str(info.value)
    assert info.value.server_message == "Hub is down for maintenance"
    assert api.model_info(REPO).sha  # count=1: next request is served normally
    hub.fail_next("POST", r"/commit/", 500, message="boom")
    with pytest.raises(HfHubHTTPError, match="boom"):
        api.create_commit(REPO, operations=[CommitOperationAdd("x.txt", b"x")], commit_message="m")
    assert hub.file(REPO, "x.txt") is None


def test_download_retries_a_single_5xx_on_head(hub, api, tmp_path):
    # hf_hub_download re-tries the HEAD once (with backoff) after a 5xx/timeout: one injected 503 is invisible.
    hub.fail_next("HEAD", r"/resolve/", 503)
    path = api.hf_hub_download(REPO, "README.md", cache_dir=tmp_path)
    assert Path(path).read_bytes() == README
    assert [r["status"] for r in hub.requests if r["method"] == "HEAD"] == [503, 200]


def test_timeout(hub, api, tmp_path):
    hub.delay_next("GET", rf"^/api/models/{REPO}$", 2.0)
    with pytest.raises(httpx2.TimeoutException):  # httpx2.ReadTimeout
        api.model_info(REPO, timeout=0.3)
    hub.delay_next("HEAD", r"/resolve/", 2.0)
    with pytest.raises(httpx2.ReadTimeout):
        api.get_hf_file_metadata(url=hub_url(hub, REPO, "README.md"), timeout=0.3)
    # hf_hub_download: a HEAD timeout (etag_timeout) is retried once with a 60 s timeout -> succeeds.
    hub.delay_next("HEAD", r"/resolve/", 1.0)
    path = api.hf_hub_download(REPO, "README.md", cache_dir=tmp_path, etag_timeout=0.3)
    assert Path(path).read_bytes() == README


def test_missing_repo_commit_header_breaks_download(hub, api, tmp_path):
    hub.omit_repo_commit_header = True
    with pytest.raises(LocalEntryNotFoundError) as info:
        api.hf_hub_download(REPO, "README.md", cache_dir=tmp_path)
    assert isinstance(info.value.__cause__, FileMetadataError)
    assert "X-Repo-Commit" in str(info.value)


def test_create_repo_and_misc_endpoints(hub, api):
    url = api.create_repo("fresh", private=True)
    assert url.repo_id == "writer/fresh" and hub.repo_exists("writer/fresh")
    assert hub.files("writer/fresh") == {".gitattributes": hub.file("writer/fresh", ".gitattributes")}
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("fresh")
    assert info.value.response.status_code == 409
    assert api.create_repo("fresh", exist_ok=True).repo_id == "writer/fresh"
    assert sorted(api.list_repo_files(REPO)) == ["README.md", "config.json"]
    assert api.file_exists(REPO, "README.md") and not api.file_exists(REPO, "nope")
    # unchanged content: the client skips the commit (preupload oid == local git sha1) and returns the head
    head = hub.head(REPO)
    assert api.create_commit(REPO, operations=[CommitOperationAdd("README.md", README)],
                             commit_message="noop").oid == head
    assert not any(r["path"].endswith("/commit/main") for r in hub.requests)


def test_dataset_repo_type(hub, tmp_path):
    hub.create_repo("acme/data", {"d.csv": b"a,b\n"}, repo_type="dataset")
    api = HfApi(endpoint=hub.url, token=WRITE)
    assert api.dataset_info("acme/data").sha == hub.head("acme/data", repo_type="dataset")
    path = api.hf_hub_download("acme/data", "d.csv", repo_type="dataset", cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"a,b\n"
    api.create_commit("acme/data", repo_type="dataset", operations=[CommitOperationAdd("e.csv", b"e")],
                      commit_message="m")
    assert hub.file("acme/data", "e.csv", repo_type="dataset") == b"e"
