"""The push file's vocabulary: formats, columns, the error and the record."""

from __future__ import annotations

import os
import re
from typing import IO, TYPE_CHECKING, Literal, TypeAlias

import attrs

from ..codec import (
    INCLUDE_UNENGAGED_PYTHON_KEY,
    PUSH_WIRE_KEYS,
    TARGET_KEY,
)
from ..errors import ValidationError, printable
from ..models import WebPush

if TYPE_CHECKING:
    from ..batch import Launch

Format: TypeAlias = Literal["jsonl", "csv", "json"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "json")
Source: TypeAlias = "str | os.PathLike[str] | IO[str] | IO[bytes]"
Item: TypeAlias = "WebPush | tuple[int, WebPush] | Launch"

CAMPAIGN_ID_KEY = "campaign_id"  # a record's optional draft id; not part of the launch body
DEDUPE_KEY_KEY = "dedupe_key"  # a record's optional dedupe key; not part of the launch body
CSV_TARGET_COLUMNS = ("target_attribute", "target_values")
CSV_VALUE_SEPARATOR = "|"  # between the values of a target_values cell
CSV_COLUMNS = (
    CAMPAIGN_ID_KEY,
    *(key for key in PUSH_WIRE_KEYS if key != TARGET_KEY),
    *CSV_TARGET_COLUMNS,
    DEDUPE_KEY_KEY,
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
        """The record's push, whether or not it names a draft or a dedupe key."""
        item = self.item
        if isinstance(item, tuple):
            return item[1]
        return item if item is None or isinstance(item, WebPush) else item.push


def _line_error(message: str, line: int, name: str | None, field: str = "line") -> Record:
    return Record(line, error=PushFileError(message, line=line, field=field, source=name))
