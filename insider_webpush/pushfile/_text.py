"""Any source as text, and its lines one at a time, each of bounded length."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from types import EllipsisType
from typing import IO, Any, cast

from ..models import PUSH_LINE_MAX
from ._records import _CHUNK, PushFileError, Source


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
