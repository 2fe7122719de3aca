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
launches that draft; and an optional `dedupe_key`, which makes it a
[`Launch`][insider_webpush.batch.Launch] launched at most once under that key. A CSV file
has one column per field, separated by commas (spaces around a cell are dropped; an empty
cell is an absent field), the target as `target_attribute` and `target_values` (values
separated by `|`), and `true`/`false` (or `yes`/`no`, `1`/`0`) for `include_unengage`.

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

import contextlib
import csv
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

from ..models import WebPush

if TYPE_CHECKING:
    from ..batch import Launch
from ._formats import _csv, _json_array, _jsonl, _tell_format
from ._records import (
    _SUFFIXES,
    CAMPAIGN_ID_KEY,
    CSV_COLUMNS,
    CSV_TARGET_COLUMNS,
    CSV_VALUE_SEPARATOR,
    FORMATS,
    Format,
    Item,
    PushFileError,
    Record,
    Source,
)
from ._text import _Lines, _name_of, _open_text
from ._write import _csv_row, _json_text, _record_of

__all__ = [
    "CAMPAIGN_ID_KEY",
    "CSV_COLUMNS",
    "CSV_TARGET_COLUMNS",
    "CSV_VALUE_SEPARATOR",
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
    pushes: Iterable[WebPush | tuple[int | None, WebPush] | Launch],
    destination: str | os.PathLike[str] | IO[str],
    *,
    format: Format | None = None,
) -> int:
    """Write pushes in a format [`read_pushes`][insider_webpush.pushfile.read_pushes] reads back to
    the same items.

    Args:
        pushes: `WebPush` items, `(campaign_id, WebPush)` pairs or
            [`Launch`][insider_webpush.batch.Launch] items (their `dedupe_key` is written
            too).
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
