"""How a model card's text changes: its ``co2_eq_emissions`` metadata is replaced or added, and every
other byte is kept (other keys, their order, comments, blank lines, fences, line endings, a UTF-8 BOM,
a missing final newline, the body).

The front matter is read exactly as huggingface_hub (and the Hub) read it: its own
``REGEX_YAML_BLOCK`` on the text without a leading BOM (``RepoCard.load`` decodes with ``utf-8-sig``),
then ``yaml.safe_load``. Only the ``co2_eq_emissions`` entry is edited, at the positions PyYAML's
parser gives; after every edit the card is read back both ways (the regex and ``yaml.safe_load``, and
huggingface_hub's ``ModelCard``) and must show every other key and the body unchanged and
``co2_eq_emissions`` exactly as given, or :class:`CardError` is raised and nothing is written.

Pure text, no I/O (the Hub and local-folder I/O is in :mod:`airflow_carbon.card.publish`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

KEY = "co2_eq_emissions"

MINIMAL_BODY = (
    "# Model card\n\n"
    "Training energy and emissions were measured by [airflow-carbon](https://pypi.org/project/airflow-carbon/) "
    "and are in this card's `co2_eq_emissions` metadata.\n"
)

_BOM = "\ufeff"
_LINE_END = re.compile(r"\r*\n|\r")
_OPENING_FENCE = re.compile(r"\s*---(?:\r\n|\r|\n)")
_FENCE_LINE = re.compile(r"[\r\n]---[ \t]*(?:[\r\n]|\Z)")
_COLON = re.compile(r"[ \t]*:")
_NO_WRAP = 2**30


class CardError(ValueError):
    """The card's text cannot be updated safely (e.g. malformed YAML front matter); nothing was written."""


def _yaml_block_regex() -> re.Pattern[str]:
    from huggingface_hub.repocard import REGEX_YAML_BLOCK  # the Hub server's own regex

    return REGEX_YAML_BLOCK


@dataclass(frozen=True)
class CardView:
    """A card as huggingface_hub reads it: its metadata and its body (the text after the front matter)."""

    metadata: dict[str, Any]
    body: str
    block: re.Match[str] | None
    """The front-matter match in the text without its BOM (None: the card has no front matter)."""


def _split_bom(text: str) -> tuple[str, str]:
    return (_BOM, text[1:]) if text.startswith(_BOM) else ("", text)


def read_card(text: str) -> CardView:
    """The card's metadata and body as huggingface_hub reads them; :class:`CardError` where it cannot
    (malformed YAML, a front matter that is not a mapping, or an opening ``---`` that never closes)."""
    _, content = _split_bom(text)
    match = _yaml_block_regex().search(content)
    if match is None:
        opening = _OPENING_FENCE.match(content)
        if opening and not _FENCE_LINE.search(content, opening.end() - 1):
            raise CardError("the card's YAML front matter opens with '---' but never closes")
        return CardView({}, content, None)
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        raise CardError(f"the card's YAML front matter is malformed: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CardError(f"the card's YAML front matter is a {type(data).__name__}, not a mapping of keys")
    return CardView(data, content[match.end() :], match)


def metadata(text: str | None) -> dict[str, Any]:
    """The card's metadata (front matter) as a dict; {} when there is none. CardError if malformed."""
    return {} if text is None else read_card(text).metadata


def existing_co2(text: str | None) -> dict[str, Any] | None:
    """The card's current ``co2_eq_emissions`` as a mapping (a bare number means its emissions), or None."""
    value = metadata(text).get(KEY)
    if value is None:
        return None
    return value if isinstance(value, dict) else {"emissions": value}


# -- the edit ----------------------------------------------------------------------------------------
def _dump(co2: dict[str, Any], flow: bool) -> str:
    return yaml.safe_dump(co2, sort_keys=False, allow_unicode=True, default_flow_style=flow, width=_NO_WRAP).rstrip("\n")


def _value_text(co2: dict[str, Any], *, flow: bool, indent: str, newline: str) -> str:
    """What follows ``co2_eq_emissions:``: a flow mapping on the key's line, or block lines under it."""
    if flow:
        return " " + _dump(co2, flow=True)
    return "".join(f"{newline}{indent}  {line}" for line in _dump(co2, flow=False).split("\n"))


def co2_yaml(co2: dict[str, Any]) -> str:
    """``co2_eq_emissions`` as the YAML lines a card's front matter holds (what the edit writes)."""
    return f"{KEY}:" + _value_text(co2, flow=False, indent="", newline="\n") + "\n"


def _nodes(events: list[yaml.Event], start: int) -> list[tuple[int, int]]:
    """The child nodes of the collection opened at ``events[start]``, as (first, last) event indices."""
    nodes, i = [], start + 1
    while not isinstance(events[i], (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
        first, depth = i, 0
        while True:
            if isinstance(events[i], (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
            elif isinstance(events[i], (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            i += 1
            if depth == 0:
                break
        nodes.append((first, i - 1))
    return nodes


def _content_end(events: list[yaml.Event], first: int, last: int) -> int:
    """Where the text of events[first..last] ends: its last scalar, alias or closing bracket (a block
    collection's end event sits at the next token, after any comments, so it does not count)."""
    ends, flow = [], []
    for event in events[first : last + 1]:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            flow.append(bool(event.flow_style))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            if flow.pop():
                ends.append(event.end_mark.index)
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            ends.append(event.end_mark.index)
    return max(ends, default=events[first].start_mark.index)


def _line_end_at(text: str, pos: int, default: str = "\n") -> str:
    """The line ending of the line at ``pos`` (``\\n``, ``\\r\\n``, ``\\r``, ``\\r\\r\\n`` ...), as written."""
    found = _LINE_END.search(text, pos)
    return found.group() if found else default


_YAML_SPACE = " \t\r\n"
"""What YAML counts as white space between tokens (Python's str.strip() also takes U+00A0 and the like, which
YAML reads as text: a value ending in one would lose it)."""


def _edits(content: str, block: re.Match[str], co2: dict[str, Any]) -> list[str]:
    """The front matter between its fences (``block.group(2)`` of ``content``) with ``co2_eq_emissions``
    set to ``co2``: the candidate texts, best first (the caller keeps the first that reads back right).
    Line endings are read in ``content``, where a line's ending may straddle the block's edges."""
    yaml_text, offset = block.group(2), block.start(2)
    events = list(yaml.parse(yaml_text, Loader=yaml.SafeLoader))
    root = next((i for i, e in enumerate(events) if isinstance(e, yaml.NodeEvent)), None)
    if root is not None and not isinstance(events[root], yaml.MappingStartEvent):
        root = None  # an empty document (safe_load gave None): add the key as the first one
    pairs = _nodes(events, root) if root is not None else []
    flow = root is not None and bool(events[root].flow_style)
    newline = _line_end_at(content, block.start(1) + block.group(1).index("---") + 3)  # the opening fence's
    keys = [
        (k, v) for (k, _), v in zip(pairs[0::2], pairs[1::2], strict=True)
        if isinstance(events[k], yaml.ScalarEvent) and events[k].value == KEY
    ]
    if keys:  # replace the entry safe_load keeps (the last one), key text and all after it kept
        k, (v_first, v_last) = keys[-1]
        key_start, key_end = events[k].start_mark.index, events[k].end_mark.index
        colon = _COLON.match(yaml_text, key_end)
        if colon is None:
            raise CardError(f"the card's {KEY} key has a form this editor does not change (no ':' after it)")
        value_end = max(colon.end(), _content_end(events, v_first, v_last))
        value_end = colon.end() + len(yaml_text[colon.end() : value_end].rstrip(_YAML_SPACE))
        newline = _line_end_at(content, offset + key_start, newline)
        value = _value_text(co2, flow=flow, indent=" " * events[k].start_mark.column, newline=newline)
        return [yaml_text[: colon.end()] + value + yaml_text[value_end:]]
    if flow:  # {a: 1}: insert before the closing brace
        close = events[_nodes_end(events, root)].end_mark.index - 1
        if yaml_text[close] != "}":
            raise CardError("the card's front matter is a flow mapping this editor cannot extend")
        at = len(yaml_text[:close].rstrip(_YAML_SPACE))
        entry = ("" if not pairs else ", ") + KEY + ":" + _value_text(co2, flow=True, indent="", newline="")
        return [yaml_text[:at] + entry + yaml_text[at:]]
    # a block mapping (or nothing): a new last entry, after the last non-blank text (comments included)
    indent = " " * events[root].start_mark.column if root is not None else ""
    entry = indent + KEY + ":" + _value_text(co2, flow=False, indent=indent, newline=newline)
    at = len(yaml_text.rstrip(_YAML_SPACE))
    if root is not None:
        at = max(at, _content_end(events, root, _nodes_end(events, root)))
    document_end = next((e for e in events if isinstance(e, yaml.DocumentEndEvent) and e.explicit), None)
    if document_end is not None:  # "..." closes the document: stay inside it
        at = min(at, len(yaml_text[: document_end.start_mark.index].rstrip(_YAML_SPACE)))
    if at == 0 or yaml_text[at - 1] in "\r\n":
        last = yaml_text[:at] + entry + (newline if at < len(yaml_text) else "") + yaml_text[at:]
    else:
        last = yaml_text[:at] + newline + entry + yaml_text[at:]
    if root is None:
        return [last]
    # A block scalar that ends the front matter ("description: |") would gain a final newline from
    # anything after it, so the second choice is a new first entry, on the line of the first key.
    first_line = events[root].start_mark.index - events[root].start_mark.column
    return [last, yaml_text[:first_line] + entry + newline + yaml_text[first_line:]]


def _nodes_end(events: list[yaml.Event], start: int) -> int:
    """The index of the end event that closes the collection opened at ``events[start]``."""
    pairs = _nodes(events, start)
    return (pairs[-1][1] if pairs else start) + 1


def _check(text: str, before: CardView, after_text: str, co2: dict[str, Any]) -> None:
    """The edit changed nothing huggingface_hub reads but ``co2_eq_emissions``, which reads as ``co2``."""
    after = read_card(after_text)
    others = lambda data: {k: v for k, v in data.items() if k != KEY}  # noqa: E731
    if after.metadata.get(KEY) != co2 or others(after.metadata) != others(before.metadata) or after.body != before.body:
        raise CardError(f"updating {KEY} would change other metadata or the body of the card; nothing was written")
    from huggingface_hub import ModelCard

    try:  # huggingface_hub's own class too, where it can read the card at all (non-string keys it cannot)
        old = ModelCard(_split_bom(text)[1], ignore_metadata_errors=True) if before.block is not None else None
    except (TypeError, ValueError):
        return
    old_data, old_text = (old.data.to_dict(), old.text) if old is not None else ({}, before.body)
    new = ModelCard(_split_bom(after_text)[1], ignore_metadata_errors=True)
    new_data = new.data.to_dict()
    if new_data.get(KEY) != co2 or others(new_data) != others(old_data) or new.text != old_text:
        raise CardError(f"updating {KEY} would change what huggingface_hub reads from the card; nothing was written")


def edit_card_metadata(text: str, co2_eq_emissions: dict[str, Any]) -> str:
    """``text`` (a model card, e.g. a README.md) with its ``co2_eq_emissions`` metadata set to
    ``co2_eq_emissions`` (grams CO2e in ``emissions``, as the Hub's spec says), every other byte kept.

    A card without front matter gets one, before its first byte (after a BOM). Raises
    :class:`CardError`, and changes nothing, where huggingface_hub cannot read the card's metadata
    either, or where the edit would change anything huggingface_hub reads besides ``co2_eq_emissions``.
    """
    if not isinstance(co2_eq_emissions, dict):
        raise TypeError(f"co2_eq_emissions must be a dict (emissions in grams, source, ...), got {co2_eq_emissions!r}")
    before = read_card(text)
    bom, content = _split_bom(text)
    block = before.block
    if block is None:  # a new front matter, with fences the Hub's regex reads whatever the body's line endings
        newline = "\r\n" if _line_end_at(content, 0) == "\r\n" else "\n"
        value = _value_text(co2_eq_emissions, flow=False, indent="", newline=newline)
        candidates = [f"{bom}---{newline}{KEY}:{value}{newline}---{newline}{content}"]
    else:
        edits = _edits(content, block, co2_eq_emissions)
        candidates = [bom + content[: block.start(2)] + yaml_text + content[block.end(2) :] for yaml_text in edits]
    for new in candidates[:-1]:
        try:
            _check(text, before, new, co2_eq_emissions)
            return new
        except CardError:
            continue
    _check(text, before, candidates[-1], co2_eq_emissions)
    return candidates[-1]


def with_co2(text: str | None, co2: dict[str, Any]) -> str:
    """``text`` with its ``co2_eq_emissions`` set to ``co2`` (:func:`edit_card_metadata`); a minimal card
    when ``text`` is None (no README yet)."""
    return edit_card_metadata("\n" + MINIMAL_BODY if text is None else text, co2)
