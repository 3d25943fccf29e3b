"""The Hub simulator answers the real huggingface_hub client as the Hub does."""

from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError

from carbon_testing.hubsim import STALE_PARENT, FakeHub

pytestmark = pytest.mark.unit


@pytest.fixture
def hub():
    with FakeHub() as server:
        server.add_token("hf_w", write=True)
        server.add_token("hf_r", write=False)
        server.create_repo("org/model", {"README.md": b"---\nlicense: mit\n---\nhi\n"})
        yield server


def test_reads_commits_and_pull_requests(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token="hf_w")
    head = api.model_info("org/model").sha
    assert head == hub.head("org/model")
    path = api.hf_hub_download("org/model", "README.md", revision=head, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"---\nlicense: mit\n---\nhi\n"
    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download("org/model", "missing.md", revision=head, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/nope")
    info = api.create_commit("org/model", [CommitOperationAdd("README.md", b"new")], commit_message="m", parent_commit=head)
    assert hub.file("org/model", "README.md") == b"new" and info.oid == hub.head("org/model")
    with pytest.raises(HfHubHTTPError, match="A commit has happened since") as err:
        api.create_commit("org/model", [CommitOperationAdd("README.md", b"x")], commit_message="m", parent_commit=head)
    assert err.value.response.status_code == 412
    pr = api.create_commit("org/model", [CommitOperationAdd("README.md", b"pr")], commit_message="m", create_pr=True)
    assert pr.pr_url.endswith("/org/model/discussions/1") and hub.file("org/model", "README.md") == b"new"
    assert hub.file("org/model", "README.md", revision="refs/pr/1") == b"pr"


@pytest.mark.parametrize("token, status", [("hf_bad", 401), ("hf_r", 403)])
def test_bad_tokens(hub, token, status):
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=hub.url, token=token).create_commit("org/model", [CommitOperationAdd("a", b"a")], commit_message="m")
    assert err.value.response.status_code == status


def test_injected_faults(hub):
    hub.fail_next("GET", r"/api/models/", 503, "Hub is overloaded")
    with pytest.raises(HfHubHTTPError, match="Hub is overloaded"):
        HfApi(endpoint=hub.url).model_info("org/model")
    assert STALE_PARENT
