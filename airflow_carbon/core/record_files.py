"""Record files: ``.json`` (one record, or a list of them) and ``.jsonl`` (one record a line), as the
CLI's ``export`` and ``card`` commands read them. Every record is validated; an error names the file,
the line and the field. Pure: no Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow_carbon.core.record import Record, RecordError, load_record


class RecordFileError(ValueError):
    """A record file that cannot be read as records; the message names the file and line."""


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _json_values(text: str) -> Iterator[tuple[int, Any]]:
    """(line, value) of a JSON document's value, or of each item when it is a list; raises JSONDecodeError."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def line_of(i: int) -> int:  # lines counted once, from where the last item was
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, i), i
        return line

    i = _skip_ws(text, 0)
    if not text.startswith("[", i):
        value, end = decoder.raw_decode(text, i)
        yield line_of(i), value
    else:
        i, end = _skip_ws(text, i + 1), i + 1
        while not text.startswith("]", i):
            value, end = decoder.raw_decode(text, i)
            yield line_of(i), value
            i = _skip_ws(text, end)
            if text.startswith(",", i):
                i = _skip_ws(text, i + 1)
                if text.startswith("]", i):
                    raise json.JSONDecodeError("Expecting value (a trailing comma)", text, i)
            elif not text.startswith("]", i):
                raise json.JSONDecodeError("Expecting ',' delimiter or ']'", text, i)
        end = i + 1
    if _skip_ws(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip_ws(text, end))


def _file_values(path: str, text: str) -> Iterator[tuple[int, Any]]:
    """(line, value) of every record in a .jsonl (one a line, blank lines skipped) or a JSON file."""
    if path.endswith(".jsonl"):
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordFileError(f"{path}:{line_no}: not JSON: {exc.msg} (column {exc.colno})") from None
        return
    try:
        yield from _json_values(text)
    except json.JSONDecodeError as exc:
        raise RecordFileError(f"{path}:{exc.lineno}: not JSON: {exc.msg} (column {exc.colno})") from None


def read_record_files(paths: Sequence[str]) -> list[Record]:
    """Every record of ``paths``, in order, validated (and in the newest shape, :func:`~airflow_carbon.core.record.load_record`);
    raises RecordFileError naming the file, line and field."""
    records: list[Record] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordFileError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        for line_no, value in _file_values(path, text):
            try:
                records.append(load_record(value))
            except RecordError as exc:
                raise RecordFileError(f"{path}:{line_no}: {exc}") from None
    return records
