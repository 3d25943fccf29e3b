"""Record files: ``.json`` (one record, or a list of them) and ``.jsonl`` (one record a line), as the
CLI's ``export`` and ``card`` commands read them. Every record is validated; an error names the file,
the line and the field. Records are read one at a time (:func:`iter_record_files`), so ``card`` over a
.jsonl file of any length runs in constant memory. Pure: no Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow_carbon.core.record import Record, RecordError, decode_record, load_record


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


def _jsonl_records(path: str, read: Callable[[bytes], Record]) -> Iterator[Record]:
    """The records of a .jsonl file, one line at a time (blank lines skipped), each read by ``read``."""
    try:
        with open(path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    yield _line_record(path, line_no, line, read)
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _line_record(path: str, line_no: int, line: bytes, read: Callable[[bytes], Record]) -> Record:
    try:
        return read(line)
    except RecordError as exc:
        error = exc
    try:  # say why as the file's other errors do: not UTF-8, not JSON, or the field
        json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordFileError(f"{path}:{line_no}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RecordFileError(f"{path}:{line_no}: not JSON: {exc.msg} (column {exc.colno})") from None
    raise RecordFileError(f"{path}:{line_no}: {error}") from None


def _json_records(path: str) -> Iterator[Record]:
    """The records of a .json file (one record, or a list): the file is one document, read whole; its
    records are checked one at a time."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordFileError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    values = _json_values(text)
    while True:
        try:
            line_no, value = next(values)
        except StopIteration:
            return
        except json.JSONDecodeError as exc:
            raise RecordFileError(f"{path}:{exc.lineno}: not JSON: {exc.msg} (column {exc.colno})") from None
        try:
            yield load_record(value)
        except RecordError as exc:
            raise RecordFileError(f"{path}:{line_no}: {exc}") from None


def iter_record_files(paths: Iterable[str], *, views: bool = False) -> Iterator[Record]:
    """Every record of ``paths``, in order, validated and in the newest shape, one at a time: memory stays flat
    for .jsonl files of any length (a .json file is one document, read whole). RecordFileError names the
    file, line and field, when the stream reaches it. ``views=True`` (for aggregating,
    :class:`~airflow_carbon.core.aggregate.Aggregate`) reads each .jsonl line into
    :func:`~airflow_carbon.core.record.decode_record`'s read-only view instead of a dict: the fastest read."""
    read = decode_record if views else load_record
    for path in paths:
        yield from _jsonl_records(path, read) if path.endswith(".jsonl") else _json_records(path)


def read_record_files(paths: Sequence[str]) -> list[Record]:
    """Every record of ``paths``, in order, validated (and in the newest shape, :func:`~airflow_carbon.core.record.load_record`);
    raises RecordFileError naming the file, line and field."""
    return list(iter_record_files(paths))
