"""How a model card's text changes: the ``co2_eq_emissions`` block of its YAML front matter is replaced
or added, and every other byte is kept: other keys, their order, comments, line endings, the body.

Pure text, no I/O (the Hub and local-folder I/O is in :mod:`airflow_carbon.card_publish`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

KEY = "co2_eq_emissions"
_KEY_LINE = re.compile(rf"^{KEY}\s*:")

MINIMAL_BODY = (
    "# Model card\n\n"
    "Training energy and emissions were measured by [airflow-carbon](https://pypi.org/project/airflow-carbon/) "
    "and are in this card's `co2_eq_emissions` metadata.\n"
)


class CardError(ValueError):
    """The card's text cannot be updated safely (e.g. malformed YAML front matter); nothing was written."""


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def split(text: str) -> tuple[list[str] | None, str]:
    """(front-matter lines without the '---' fences, or None when there is none; the rest of the text)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return None, text
    for end in range(1, len(lines)):
        if lines[end].rstrip("\r\n") == "---":
            return lines[1:end], "".join(lines[end + 1 :])
    raise CardError("the card's YAML front matter opens with '---' but never closes")


def metadata(text: str | None) -> dict[str, Any]:
    """The card's metadata (front matter) as a dict; {} when there is none. CardError if malformed."""
    if text is None:
        return {}
    front, _ = split(text)
    if front is None:
        return {}
    try:
        data = yaml.safe_load("".join(front))
    except yaml.YAMLError as exc:
        raise CardError(f"the card's YAML front matter is malformed: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError(f"the card's YAML front matter is a {type(data).__name__}, not a mapping of keys")
    return data


def existing_co2(text: str | None) -> dict[str, Any] | None:
    """The card's current ``co2_eq_emissions`` as a mapping (a bare number means its emissions), or None."""
    value = metadata(text).get(KEY)
    if value is None:
        return None
    return value if isinstance(value, dict) else {"emissions": value}


def _block(co2: dict[str, Any], newline: str) -> list[str]:
    dumped = yaml.safe_dump({KEY: co2}, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return [line + newline for line in dumped.splitlines()]


def with_co2(text: str | None, co2: dict[str, Any]) -> str:
    """``text`` with its ``co2_eq_emissions`` set to ``co2``; a minimal card when ``text`` is None."""
    if text is None:
        return "".join(["---\n", *_block(co2, "\n"), "---\n\n", MINIMAL_BODY])
    before = metadata(text)  # also rejects malformed YAML before anything changes
    newline = _newline(text)
    front, body = split(text)
    if front is None:
        return "".join([f"---{newline}", *_block(co2, newline), f"---{newline}", text])
    start = next((i for i, line in enumerate(front) if _KEY_LINE.match(line)), None)
    if start is None:
        if front and not front[-1].endswith(("\n", "\r")):
            front[-1] += newline
        new_front = [*front, *_block(co2, newline)]
    else:
        end = start + 1
        while end < len(front) and (not front[end].strip() or front[end][0] in " \t" or front[end].startswith("#")):
            end += 1
        while end > start + 1 and not front[end - 1].strip():  # keep blank lines that separate keys
            end -= 1
        new_front = [*front[:start], *_block(co2, newline), *front[end:]]
    result = "".join([f"---{newline}", *new_front, f"---{newline}", body])
    after = metadata(result)
    if after.get(KEY) != co2 or {k: v for k, v in after.items() if k != KEY} != {k: v for k, v in before.items() if k != KEY}:
        raise CardError("updating co2_eq_emissions would change other metadata of the card; nothing was written")
    return result
