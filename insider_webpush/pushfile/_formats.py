"""The three formats read: JSONL, CSV and a JSON array, each record a Record."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from ..codec import (
    INCLUDE_UNENGAGED_PYTHON_KEY,
    INCLUDE_UNENGAGED_WIRE_KEY,
    TARGET_KEY,
    push_from_dict,
    target_to_dict,
)
from ..errors import ValidationError, printable
from ..models import PUSH_LINE_MAX, check_campaign_id, check_dedupe_key
from ._records import (
    _CSV_KNOWN,
    _FALSE,
    _SUFFIXES,
    _TRUE,
    _UNDECODABLE,
    CAMPAIGN_ID_KEY,
    CSV_COLUMNS,
    CSV_TARGET_COLUMNS,
    CSV_VALUE_SEPARATOR,
    DEDUPE_KEY_KEY,
    Format,
    PushFileError,
    Record,
    _line_error,
)
from ._text import _Lines, _TooLong


def _tell_format(first: str, first_line: str | None, name: str | None) -> Format:
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    suffix = os.path.splitext(name or "")[1].lower()
    by_suffix = _SUFFIXES.get(suffix)
    if by_suffix is not None or not first:  # blank: what it would have been, JSONL by default
        return by_suffix or "jsonl"
    if first_line is not None and _header_problem(next(csv.reader([first_line]))) is None:
        return "csv"
    raise PushFileError(
        "can't tell its format: it starts with neither a JSON object (JSONL), a JSON array "
        f"nor a CSV header of push fields ({', '.join(CSV_COLUMNS[1:6])}...); give the format "
        "(format= or --format), or a .jsonl, .csv or .json name",
        field="file",
        source=name,
    )


def _bad_byte(text: str) -> int | None:
    """The first byte that did not decode (``surrogateescape`` kept it as a surrogate)."""
    bad = _UNDECODABLE.search(text)
    return None if bad is None else ord(bad.group()) - 0xDC00


def _undecodable(text: str, encoding: str) -> str | None:
    byte = _bad_byte(text)
    return None if byte is None else f"holds a byte that is not {encoding} text: 0x{byte:02x}"


def _too_long() -> str:
    return f"is longer than {PUSH_LINE_MAX} characters"


def _jsonl(lines: _Lines, name: str | None, encoding: str) -> Iterator[Record]:
    while (text := lines.read()) is not ...:
        number = lines.number
        if text is None:
            yield _line_error(_too_long(), number, name)
        elif not text.strip():
            continue
        elif problem := _undecodable(text, encoding):
            yield _line_error(problem, number, name)
        else:
            try:
                data = json.loads(text.rstrip("\r\n"))  # so a column is on this line
            except RecursionError:
                yield _line_error("is JSON nested too deeply", number, name)
            except json.JSONDecodeError as exc:
                message = f"is not valid JSON: {_json_reason(exc)} (column {exc.colno})"
                yield _line_error(message, number, name)
            except ValueError:  # e.g. an integer of over 4300 digits
                yield _line_error("is not valid JSON: a number too long", number, name)
            else:
                yield _record(number, data, name)


def _json_reason(exc: json.JSONDecodeError) -> str:
    return exc.msg.removesuffix(" at")  # "Invalid control character at"


def _csv(lines: _Lines, name: str | None, encoding: str) -> Iterator[Record]:
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except (_TooLong, csv.Error) as exc:
        yield _line_error(_csv_problem(exc), 1, name)
        return
    if header is None:
        return
    if problem := _header_problem(header):
        field, message = problem
        yield _line_error(message, 1, name, field=field)
        return
    columns = [cell.strip() for cell in header]
    while True:
        start = lines.number + 1  # a quoted cell may span lines: a row is where it starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except _TooLong as exc:  # the reader can't resume inside a row
            yield _line_error(_csv_problem(exc), lines.number, name)
            return
        except csv.Error as exc:
            yield _line_error(_csv_problem(exc), start, name)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            message = f"has {len(row)} cells; the header has {len(columns)} columns"
            yield _line_error(message, start, name)
        elif undecodable := _undecodable("".join(row), encoding):
            yield _line_error(undecodable, start, name)
        else:
            # Spaces around a cell are the writer's, not the push's (" 3600", "a, b").
            cells = {c: v.strip() for c, v in zip(columns, row, strict=False) if v.strip()}
            try:
                data = _from_csv_row(cells)
            except ValidationError as exc:
                yield _line_error(exc.message, start, name, field=exc.field)
            else:
                yield _record(start, data, name)


def _csv_problem(exc: Exception) -> str:
    return _too_long() if isinstance(exc, _TooLong) else f"is not valid CSV: {exc}"


def _header_problem(header: list[str]) -> tuple[str, str] | None:
    """(field, message) when `header` is not a push file's CSV header."""
    seen: set[str] = set()
    for cell in header:
        column = cell.strip()
        if (byte := _bad_byte(column)) is not None:
            return "line", f"holds a byte that is not text in the file's encoding: 0x{byte:02x}"
        if column not in _CSV_KNOWN:
            shown = printable(column[:40]) + ("..." if len(column) > 40 else "") or "(empty)"
            separator = next((c for c in ";\t" if c in column), None)
            if separator is not None:
                return shown, f"is not a column: cells are separated by commas, not {separator!r}"
            return shown, f"is not a column of a push file ({', '.join(CSV_COLUMNS)})"
        if column in seen:
            return column, "is a column twice in the header"
        seen.add(column)
    return None


def _from_csv_row(cells: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the object a JSONL line would hold."""
    data: dict[str, Any] = dict(cells)
    attribute = data.pop(CSV_TARGET_COLUMNS[0], None)
    values = data.pop(CSV_TARGET_COLUMNS[1], None)
    if attribute is not None or values is not None:
        data[TARGET_KEY] = target_to_dict(
            attribute, values.split(CSV_VALUE_SEPARATOR) if values is not None else None
        )
    for key in (INCLUDE_UNENGAGED_WIRE_KEY, INCLUDE_UNENGAGED_PYTHON_KEY):
        flag = data.get(key)
        if isinstance(flag, str):
            if flag.strip().lower() not in _TRUE | _FALSE:
                raise ValidationError(key, "must be true or false (yes/no, 1/0)")
            data[key] = flag.strip().lower() in _TRUE
    return data


_DECODER = json.JSONDecoder()
_BLANK = re.compile(r"[ \t\r\n]*")


def _json_array(lines: _Lines, name: str | None, encoding: str) -> Iterator[Record]:
    """A JSON array's elements one at a time, holding at most one element's text."""
    buffer = ""
    top = 1  # the line buffer[0] is on
    position = 0

    def line_at(index: int) -> int:
        return top + buffer.count("\n", 0, index)

    def more() -> bool:
        nonlocal buffer
        text = lines.read()
        if text is None:
            raise _TooLong
        if text is ...:
            return False
        buffer += text
        return True

    def skip_blank() -> bool:
        """Move `position` to the next character that is not blank; False at the end."""
        nonlocal buffer, top, position
        while True:
            position = _BLANK.match(buffer, position).end()  # type: ignore[union-attr]
            if position < len(buffer):
                return True
            top, buffer, position = top + buffer.count("\n"), "", 0
            if not more():
                return False

    try:
        skip_blank()
        position += 1  # the "[": peek() saw it
        expect_comma = False
        while True:
            if not skip_blank():
                yield _line_error(
                    "the JSON array is not closed: ']' is missing", lines.number, name
                )
                return
            char = buffer[position]
            if char == "]":
                position += 1
                if skip_blank():
                    yield _line_error(
                        "has text after the end of the JSON array", line_at(position), name
                    )
                return
            if expect_comma:
                if char != ",":
                    yield _line_error(
                        "is not valid JSON: ',' or ']' expected", line_at(position), name
                    )
                    return
                position += 1
                if not skip_blank() or buffer[position] == "]":
                    yield _line_error(
                        "is not valid JSON: a value expected after ','", line_at(position), name
                    )
                    return
            start = position
            while True:
                try:
                    data, end = _DECODER.raw_decode(buffer, start)
                    break
                except json.JSONDecodeError as exc:
                    # Cut off by the end of what was read, or wrong: more text tells.
                    last_line = buffer.rfind("\n", 0, len(buffer) - 1) + 1
                    if exc.pos < last_line or len(buffer) - start > PUSH_LINE_MAX or not more():
                        message = f"is not valid JSON: {_json_reason(exc)}"
                        yield _line_error(message, line_at(exc.pos), name)
                        return
            number = line_at(start)
            if problem := _undecodable(buffer[start:end], encoding):
                yield _line_error(problem, number, name)
            else:
                yield _record(number, data, name)
            top, buffer, position = top + buffer.count("\n", 0, end), buffer[end:], 0
            expect_comma = True
    except _TooLong:
        yield _line_error(_too_long(), lines.number, name)
    except RecursionError:
        yield _line_error("is JSON nested too deeply", lines.number, name)
    except ValueError:  # not a JSONDecodeError: e.g. an integer of over 4300 digits
        yield _line_error("is not valid JSON: a number too long", lines.number, name)


def _record(number: int, data: object, name: str | None) -> Record:
    campaign_id: int | None = None
    dedupe_key: str | None = None
    try:
        if isinstance(data, dict) and CAMPAIGN_ID_KEY in data:
            data = dict(data)
            raw = data.pop(CAMPAIGN_ID_KEY)
            if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
                raw = int(raw.strip())
            if raw is not None and (not isinstance(raw, int) or isinstance(raw, bool)):
                raise ValidationError(
                    CAMPAIGN_ID_KEY, "must be a positive whole number, a draft's id"
                )
            campaign_id = check_campaign_id(raw)
        if isinstance(data, dict) and DEDUPE_KEY_KEY in data:
            data = dict(data)
            raw_key = data.pop(DEDUPE_KEY_KEY)
            if raw_key is not None and raw_key != "":  # an empty CSV cell: no key
                dedupe_key = check_dedupe_key(raw_key)
        push = push_from_dict(data)  # type: ignore[arg-type]
    except ValidationError as exc:
        return _line_error(exc.message, number, name, field=exc.field)
    if dedupe_key is not None:
        from ..batch import Launch  # the batch imports nothing of pushfile

        return Record(number, item=Launch(push, campaign_id, dedupe_key))
    return Record(number, item=push if campaign_id is None else (campaign_id, push))
