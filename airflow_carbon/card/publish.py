"""How the card reaches its home: a Hugging Face Hub model repo (through ``huggingface_hub``) or a local
model folder. Safe by construction:

- the Hub client is an ``HfApi(endpoint=..., token=...)`` made per call (``HF_ENDPOINT`` is read by
  ``huggingface_hub`` at import; we never rely on that);
- the README is read at the exact commit the target revision points to, and the new card is committed
  to that revision with ``parent_commit`` = that commit, so a concurrent edit makes the commit fail
  instead of being overwritten, and ``revision=`` reads and writes the same branch;
- only the Hub's "entry not found" for README.md creates a card; any other failure to read it (no
  ``X-Repo-Commit``, connection error, 5xx, timeout) raises, and nothing is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_carbon.card.text import CardError, existing_co2, with_co2

README = "README.md"
DEFAULT_ENDPOINT = "https://huggingface.co"

MakeCo2 = Callable[[dict[str, Any] | None], dict[str, Any]]
"""Given the card's current co2_eq_emissions (or None), the value to write."""

Exports = dict[str, "bytes | Path"]
"""Files to write beside the card: name -> content, or the path of a file that holds it."""


class HubReadError(RuntimeError):
    """The card could not be read from the Hub (an error, not "no card"); nothing was written."""


@dataclass(frozen=True)
class Published:
    """What was written: the metadata, where, and (Hub) the commit and pull request."""

    co2_eq_emissions: dict[str, Any]
    location: str
    changed: bool
    commit: str | None = None
    pull_request_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _decode(data: bytes) -> str:
    """The card's text, a BOM kept (the edit keeps it too); CardError if it is not UTF-8, as the Hub wants."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(f"the card is not UTF-8 text ({exc}); the Hub reads model cards as UTF-8") from None


def publish_local(local_dir: str | os.PathLike[str], make_co2: MakeCo2, exports: Exports) -> Published:
    """Update ``local_dir``/README.md (created with a minimal card if missing) and write ``exports``."""
    return publish_file(Path(local_dir) / README, make_co2, exports)


def publish_file(card_path: str | os.PathLike[str], make_co2: MakeCo2, exports: Exports | None = None) -> Published:
    """Update the model card at ``card_path`` (created with a minimal card if missing) and write
    ``exports`` beside it; each file is replaced atomically, so a reader never sees half a card."""
    readme = Path(card_path)
    readme.parent.mkdir(parents=True, exist_ok=True)
    text, co2, new = _updated_file(readme, make_co2)
    for name, data in {readme.name: new.encode("utf-8"), **(exports or {})}.items():
        tmp = readme.parent / f".{name}.tmp"
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            shutil.copyfile(data, tmp)
        os.replace(tmp, readme.parent / name)
    return Published(co2, str(readme), changed=new != text)


def preview_file(card_path: str | os.PathLike[str], make_co2: MakeCo2) -> str:
    """The text :func:`publish_file` would write to ``card_path``, without writing anything."""
    return _updated_file(Path(card_path), make_co2)[2]


def _updated_file(readme: Path, make_co2: MakeCo2) -> tuple[str | None, dict[str, Any], str]:
    """(the card's text or None, the co2_eq_emissions to write, the new text)."""
    text = _decode(readme.read_bytes()) if readme.exists() else None
    co2 = make_co2(existing_co2(text))
    return text, co2, with_co2(text, co2)


def publish_hub(
    repo_id: str,
    make_co2: MakeCo2,
    exports: Exports,
    *,
    endpoint: str,
    token: str | None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    timeout_s: float = 30.0,
) -> Published:
    """Update the model card of Hub repo ``repo_id`` in one commit (with ``exports`` beside it).
    ``timeout_s`` (s) bounds each read from the Hub."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    head = api.model_info(repo_id, revision=revision, timeout=timeout_s).sha  # the commit the revision points to now
    with tempfile.TemporaryDirectory(prefix="airflow-carbon-card-") as cache:
        try:
            path = api.hf_hub_download(repo_id, README, revision=head, cache_dir=cache, etag_timeout=timeout_s)
            text: str | None = _decode(Path(path).read_bytes())
        except RemoteEntryNotFoundError:  # the Hub answered "no such file": only then create a card.
            # (Not EntryNotFoundError: its LocalEntryNotFoundError branch also means "could not reach the Hub".)
            text = None
        except LocalEntryNotFoundError as exc:  # the Hub could not be asked: say what it answered
            cause = exc.__cause__ or exc.__context__
            response = getattr(cause, "response", None)
            hub_says = response.headers.get("X-Error-Message") if response is not None else None
            detail = f"{cause or exc}" + (f" (the Hub says: {hub_says})" if hub_says else "")
            raise HubReadError(
                f"could not read {README} of {repo_id} at {head} from {endpoint}: {detail}; the card was not changed"
            ) from exc
    co2 = make_co2(existing_co2(text))
    new = with_co2(text, co2)
    if new == text and not exports:
        return Published(co2, f"{endpoint}/{repo_id}", changed=False, commit=head)
    operations = [CommitOperationAdd(README, new.encode("utf-8"))]
    operations += [CommitOperationAdd(name, data if isinstance(data, bytes) else str(data)) for name, data in exports.items()]
    commit = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or "Update co2_eq_emissions (airflow-carbon)",
        revision=revision,
        create_pr=create_pr,
        parent_commit=head,
    )
    return Published(co2, f"{endpoint}/{repo_id}", changed=True, commit=commit.oid, pull_request_url=commit.pr_url)
