"""The push file: pushes in JSONL, CSV or a JSON array, read lazily and written back.

One format for the `insider-webpush` command and for code:

```python
from insider_webpush.pushfile import read_pushes

async for outcome in client.stream(read_pushes("pushes.jsonl")):
    ...
```

**Records.** Each push is a JSON object with the launch body's wire names (`title`,
`description`, `image`, `link`, `ttl`, optional `banner`, `include_unengage` (or
`include_unengaged`), `language`, `target` and `partner_id`), plus an optional
`campaign_id`: a draft's id, which makes the item a `(campaign_id, WebPush)` pair that
launches that draft. A CSV file has one column per field, separated by commas (spaces
around a cell are dropped; an empty cell is an absent field), the target as
`target_attribute` and `target_values` (values separated by `|`), and `true`/`false` (or
`yes`/`no`, `1`/`0`) for `include_unengage`.

**Sources.** A path (`str` or `os.PathLike`), `"-"` for standard input, or an open
text or binary stream. Bytes are decoded as UTF-8 (`encoding=`), a leading byte-order mark
is dropped and CRLF line ends are read like LF on every kind of source.

**Format.** `format=None` picks it from the suffix (`.jsonl`/`.ndjson`: JSONL, `.csv`: CSV, `.json`:
a JSON array or JSONL, told by the first character) and otherwise from the content: `[` starts a
JSON array, `{` a JSONL file, a header naming push fields a CSV file. Anything else is a
[`PushFileError`][insider_webpush.pushfile.PushFileError], never an empty read.

**Limits.** A line (a JSON array's element) longer than
[`PUSH_LINE_MAX`][insider_webpush.models.PUSH_LINE_MAX] characters is an error for that line, so
memory stays bounded by one line whatever the input.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from types import EllipsisType
from typing import IO, Any, Literal, TypeAlias, cast

import attrs

from .codec import (
    INCLUDE_UNENGAGED_PYTHON_KEY,
    INCLUDE_UNENGAGED_WIRE_KEY,
    PUSH_WIRE_KEYS,
    TARGET_KEY,
    push_from_dict,
    push_to_dict,
    target_to_dict,
)
from .errors import ValidationError, printable
from .models import PUSH_LINE_MAX, WebPush, check_campaign_id

__all__ = [
    "CAMPAIGN_ID_KEY",
    "FORMATS",
    "Format",
    "PushFileError",
    "PushFileReader",
    "Record",
    "Source",
    "read_lines",
    "read_pushes",
    "write_pushes",
]

Format: TypeAlias = Literal["jsonl", "csv", "json"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "json")
Source: TypeAlias = "str | os.PathLike[str] | IO[str] | IO[bytes]"
Item: TypeAlias = "WebPush | tuple[int, WebPush]"

CAMPAIGN_ID_KEY = "campaign_id"  # a record's optional draft id; not part of the launch body
CSV_TARGET_COLUMNS = ("target_attribute", "target_values")
CSV_VALUE_SEPARATOR = "|"  # between the values of a target_values cell
CSV_COLUMNS = (
    CAMPAIGN_ID_KEY,
    *(key for key in PUSH_WIRE_KEYS if key != TARGET_KEY),
    *CSV_TARGET_COLUMNS,
)
_CSV_KNOWN = frozenset((*CSV_COLUMNS, INCLUDE_UNENGAGED_PYTHON_KEY))
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_SUFFIXES: dict[str, Format | None] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".json": None,  # an array or JSONL: the first character tells
}
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a bad byte
_CHUNK = 64 * 1024


class PushFileError(ValidationError):
    """A push file, or one of its lines, is not what
    [`insider_webpush.pushfile`][insider_webpush.pushfile] reads.

    Attributes:
        line (int | None): the 1-based line the bad record starts on; None for the file as a
            whole (unreadable, unknown format).
        field (str): the field at fault (`"title"`, `"campaign_id"`...), or `"line"` /
            `"file"` when no single field is.
        message (str): what is wrong, with the limit it broke.
        source (str | None): the file's name, when it has one.
        reason (str): the field and the message, without the file and line.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        field: str = "line",
        source: str | None = None,
    ) -> None:
        # Both may quote the file (a field's name): never raw control characters.
        field, message = printable(field), printable(message)
        super().__init__(field, message)
        self.line = line
        self.source = source
        where = ", ".join(p for p in (source, f"line {line}" if line else None) if p)
        said = message if field in ("line", "file") else f"{field}: {message}"
        self.reason = said  # without the place: what the CLI prints after "line N: "
        self.args = (f"{where}: {said}" if where else said,)

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class Record:
    """One record of a push file: its line, and its item or why it is not one.

    Attributes:
        line (int): the 1-based line the record starts on.
        item (WebPush | tuple[int, WebPush] | None): what `send_many`/`stream` take; None
            when `error` is set.
        error (PushFileError | None): why the record is not a push.
    """

    line: int
    item: Item | None = None
    error: PushFileError | None = None

    @property
    def push(self) -> WebPush | None:
        """The record's push, whether or not it names a draft."""
        return self.item[1] if isinstance(self.item, tuple) else self.item


def read_pushes(
    source: Source, *, format: Format | None = None, encoding: str = "utf-8"
) -> Iterator[Item]:
    """The pushes of a push file, lazily, in file order.

    Args:
        source: a path, `"-"` (standard input), or an open text or binary stream (not
            closed here).
        format: `"jsonl"`, `"csv"` or `"json"` (an array); None (default) tells it from
            the suffix and the content.
        encoding: of a path or a binary stream; default UTF-8, a leading BOM is dropped.

    Yields:
        A [`WebPush`][insider_webpush.models.WebPush], or `(campaign_id, WebPush)` for a
        record that names a draft: exactly the items `send_many` and `stream` take.

    Raises:
        PushFileError: at the first bad record (with its `.line` and `.field`), or when
            the file can't be read or its format can't be told.
    """
    for record in read_lines(source, format=format, encoding=encoding):
        if record.error is not None:
            raise record.error
        assert record.item is not None
        yield record.item


def read_lines(
    source: Source, *, format: Format | None = None, encoding: str = "utf-8"
) -> PushFileReader:
    """Every record of a push file, good or bad, lazily: what `validate` reports.

    Takes the arguments of [`read_pushes`][insider_webpush.pushfile.read_pushes]. The file is opened
    on the first `next()`, and closed when the records run out or the reader is closed (`with
    read_lines(...) as records:`). A bad record does not stop the reading, except one that leaves
    the rest unreadable (a broken JSON array, a CSV line over the limit, undecodable text in a text
    stream): that is the last record.

    Raises:
        PushFileError: (line None) when the file can't be opened or its format can't be told.
    """
    if format is not None and format not in FORMATS:
        raise PushFileError(f"must be one of {', '.join(FORMATS)}, got {format!r}", field="format")
    return PushFileReader(source, format, encoding)


class PushFileReader(Iterator[Record]):
    """The iterator [`read_lines`][insider_webpush.pushfile.read_lines] returns; `.format` is known
    after the first record."""

    def __init__(self, source: Source, format: Format | None, encoding: str) -> None:
        self._source = source
        self._encoding = encoding
        self.format: Format | None = format
        self.name = _name_of(source)
        self._records: Iterator[Record] | None = None
        self._stack = contextlib.ExitStack()

    def __next__(self) -> Record:
        if self._records is None:
            self._records = self._open()
        try:
            return next(self._records)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PushFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file, if this reader opened it."""
        self._records = iter(())
        self._stack.close()

    def _open(self) -> Iterator[Record]:
        text = self._stack.enter_context(_open_text(self._source, self._encoding, self.name))
        lines = _Lines(text, self.name)
        first, first_line = lines.peek()
        if self.format is None:
            self.format = _tell_format(first, first_line, self.name)
        elif self.format == "json" and first not in ("[", ""):
            raise PushFileError(
                "is not a JSON array: it does not start with '['", field="file", source=self.name
            )
        records = {"jsonl": _jsonl, "csv": _csv, "json": _json_array}[self.format]
        return records(lines, self.name, self._encoding)


def write_pushes(
    pushes: Iterable[WebPush | tuple[int | None, WebPush]],
    destination: str | os.PathLike[str] | IO[str],
    *,
    format: Format | None = None,
) -> int:
    """Write pushes in a format [`read_pushes`][insider_webpush.pushfile.read_pushes] reads back to
    the same items.

    Args:
        pushes: `WebPush` items or `(campaign_id, WebPush)` pairs.
        destination: a path (created or truncated), `"-"` (standard output) or an open text
            stream (not closed here).
        format: `"jsonl"`, `"csv"` or `"json"`; None (default) takes a path's suffix,
            else JSONL.

    Returns:
        How many pushes were written.

    Raises:
        PushFileError: an item that is not a push, or a target value holding `|` in CSV.
        OSError: the destination can't be written.
    """
    name = _name_of(destination)
    if format is None:
        suffix = os.path.splitext(name or "")[1].lower()
        format = _SUFFIXES.get(suffix) or ("json" if suffix == ".json" else "jsonl")
    if format not in FORMATS:
        raise PushFileError(f"must be one of {', '.join(FORMATS)}, got {format!r}", field="format")
    with contextlib.ExitStack() as stack:
        if isinstance(destination, str | os.PathLike) and destination != "-":
            out: IO[str] = stack.enter_context(open(destination, "w", encoding="utf-8", newline=""))
        else:
            out = sys.stdout if destination == "-" else destination  # type: ignore[assignment]
        writer = csv.writer(out, lineterminator="\r\n") if format == "csv" else None
        if writer is not None:
            writer.writerow(CSV_COLUMNS)
        count = 0
        for number, item in enumerate(pushes, start=1):
            data = _record_of(item, number)
            if writer is not None:
                writer.writerow(_csv_row(data, number))
            elif format == "json":
                out.write(("[\n" if count == 0 else ",\n") + _json_text(data))
            else:
                out.write(_json_text(data) + "\n")
            count += 1
        if format == "json":
            out.write("\n]\n" if count else "[]\n")
        out.flush()
    return count


# -- reading ---------------------------------------------------------------------------------


def _name_of(source: object) -> str | None:
    if isinstance(source, str) and source == "-":
        return "<stdin>"
    if isinstance(source, str | os.PathLike):
        return str(os.fspath(source))
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


@contextlib.contextmanager
def _open_text(source: Source, encoding: str, name: str | None) -> Iterator[IO[str]]:
    """`source` as text with untranslated line ends. A byte that does not decode becomes a
    lone surrogate (`surrogateescape`), so the record holding it is the one reported.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise PushFileError(f"unknown encoding {encoding!r}", field="encoding") from None
    if isinstance(source, str | os.PathLike) and source != "-":
        try:
            handle = open(source, encoding=encoding, errors="surrogateescape", newline="")  # noqa: SIM115
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise PushFileError(f"can't be read: {reason}", field="file", source=name) from None
        with handle:
            yield handle
        return
    stream: Any = sys.stdin if source == "-" else source
    if source == "-" and getattr(stream, "buffer", None) is not None:
        stream = stream.buffer  # stdin's bytes, so it decodes like a file does
    if isinstance(stream, io.TextIOBase) or (
        not isinstance(stream, io.BufferedIOBase | io.RawIOBase)
        and isinstance(getattr(stream, "encoding", None), str)
    ):
        yield cast("IO[str]", stream)
        return
    wrapper = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline="")
    try:
        yield wrapper
    finally:
        with contextlib.suppress(ValueError):  # the caller closed it already
            wrapper.detach()  # the caller's stream stays open


class _TooLong(Exception):
    pass


class _Lines:
    """The physical lines of a text, numbered from 1, the BOM dropped, each read with a bound:
    a longer line is skipped to its end and reported as None (and raised as
    [`_TooLong`][insider_webpush.pushfile._TooLong] to a CSV reader, which can't resume mid-record).
    """

    def __init__(self, text: IO[str], name: str | None) -> None:
        self._text = text
        self._name = name
        self._pending: list[str | None] = []  # read by peek(), not yet handed out
        self._read = 0  # lines read from the text
        self.number = 0  # the line last handed out

    def _fresh(self) -> str | EllipsisType | None:
        try:
            line = self._text.readline(PUSH_LINE_MAX + 1)
        except UnicodeDecodeError as exc:  # a caller's text stream that decodes strictly
            raise PushFileError(
                f"is not valid {exc.encoding} text ({exc.reason})",
                line=self._read + 1,
                source=self._name,
            ) from None
        if not line:
            return ...
        self._read += 1
        if self._read == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if len(line) > PUSH_LINE_MAX and not line.endswith("\n"):
            while (rest := self._text.readline(_CHUNK)) and not rest.endswith("\n"):
                pass
            return None
        return line

    def read(self) -> str | EllipsisType | None:
        """The next line; None when it is too long; `...` at the end."""
        line = self._pending.pop(0) if self._pending else self._fresh()
        if line is not ...:
            self.number += 1
        return line

    def peek(self) -> tuple[str, str | None]:
        """The first character that is not blank space ("" for a blank text) and its line
        (None when too long); the lines read to find it stay to be read.
        """
        while (line := self._fresh()) is not ...:
            self._pending.append(line)
            if line is None:
                return "\x00", None  # no format starts with a line this long
            if stripped := line.strip():
                return stripped[0], line
        return "", None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.read()
        if line is ...:
            raise StopIteration
        if line is None:
            raise _TooLong
        return line


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


def _line_error(message: str, line: int, name: str | None, field: str = "line") -> Record:
    return Record(line, error=PushFileError(message, line=line, field=field, source=name))


def _undecodable(text: str, encoding: str) -> str | None:
    bad = _UNDECODABLE.search(text)
    if bad is None:
        return None
    byte = ord(bad.group()) - 0xDC00
    return f"holds a byte that is not {encoding} text: 0x{byte:02x}"


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
        if (bad := _UNDECODABLE.search(column)) is not None:
            byte = ord(bad.group()) - 0xDC00
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
        push = push_from_dict(data)  # type: ignore[arg-type]
    except ValidationError as exc:
        return _line_error(exc.message, number, name, field=exc.field)
    return Record(number, item=push if campaign_id is None else (campaign_id, push))


# -- writing ---------------------------------------------------------------------------------


def _record_of(item: object, number: int) -> dict[str, Any]:
    campaign_id: object = None
    push = item
    if isinstance(item, tuple) and len(item) == 2:
        campaign_id, push = item
    if not isinstance(push, WebPush):
        raise PushFileError(
            f"item {number} is not a WebPush or a (campaign_id, WebPush) pair",
            field="push",
        )
    try:
        check_campaign_id(campaign_id)  # what read_pushes would refuse is never written
    except ValidationError as exc:
        raise PushFileError(f"item {number}: {exc.message}", field=exc.field) from None
    data: dict[str, Any] = {} if campaign_id is None else {CAMPAIGN_ID_KEY: campaign_id}
    data.update(push_to_dict(push))
    data["ttl"] = push.ttl  # a number, as a file would give it (the wire's string reads too)
    return data


def _json_text(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False)
    # A lone surrogate can't be written as UTF-8: that record keeps JSON's \u escapes.
    return json.dumps(data) if _SURROGATE.search(text) else text


_SURROGATE = re.compile("[\ud800-\udfff]")


def _csv_row(data: dict[str, Any], number: int) -> list[str]:
    target = data.pop(TARGET_KEY, None)
    if target is not None:
        values = target["values"]
        if any(CSV_VALUE_SEPARATOR in value for value in values):
            raise PushFileError(
                f"item {number}: a value holds {CSV_VALUE_SEPARATOR!r}, which separates CSV "
                "values; write JSONL instead",
                field="target.values",
            )
        data[CSV_TARGET_COLUMNS[0]] = target["attribute"]
        data[CSV_TARGET_COLUMNS[1]] = CSV_VALUE_SEPARATOR.join(values)
    for key, value in data.items():
        if isinstance(value, str) and value != value.strip():
            raise PushFileError(
                f"item {number}: it starts or ends with a space, which CSV drops; write "
                "JSONL instead",
                field=key,
            )
    flag = data.get(INCLUDE_UNENGAGED_WIRE_KEY)
    if isinstance(flag, bool):
        data[INCLUDE_UNENGAGED_WIRE_KEY] = "true" if flag else "false"
    return ["" if data.get(column) is None else str(data[column]) for column in CSV_COLUMNS]
