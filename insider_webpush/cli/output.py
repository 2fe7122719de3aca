"""Everything the command prints: masked, escaped, and as rich tables when rich is there."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Sequence

from ..client import LOG_EVENT
from ..errors import printable

MASK = "***"
_WORD_SAFE = 8  # characters from which a key is masked even inside a word


class Output:
    """Prints to stdout/stderr with every known key value masked and control characters
    escaped (text from files and servers must not drive the terminal).

    A key shorter than 8 characters is masked as a whole token only, so it does not mask
    parts of ordinary words (``ck`` in ``checked``).
    """

    def __init__(self, *, plain: bool, secrets: Iterable[str]) -> None:
        # Longest first, so a key that contains another is masked whole. A key of 8
        # characters or more is masked wherever it stands (e.g. glued into a URL); a shorter
        # one only as a whole token, or it would mask parts of ordinary words.
        keys = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._long_keys = [k for k in keys if len(k) >= _WORD_SAFE]
        short = [k for k in keys if len(k) < _WORD_SAFE]
        self._short_keys = (
            re.compile("|".join(rf"(?<!\w){re.escape(k)}(?!\w)" for k in short)) if short else None
        )
        self.rich: bool = not plain and rich_available()

    def redact(self, text: str) -> str:
        text = text if text.isprintable() else printable(text)
        for key in self._long_keys:
            text = text.replace(key, MASK)
        return self._short_keys.sub(MASK, text) if self._short_keys is not None else text

    def echo(self, text: str = "", *, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        lines = [self.redact(line) for line in text.split("\n")]
        print("\n".join(lines), file=stream, flush=True)

    def error(self, text: str) -> None:
        self.echo(f"error: {text}", err=True)

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        if self.rich and sys.stdout.isatty():  # piped: lines a script can read, unwrapped
            from rich import box
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            table = Table(
                title=Text(self.redact(title)),  # Text: a name's "[b]" is no markup
                box=box.SIMPLE,
                show_header=False,
                title_justify="left",
            )
            table.add_column(style="bold")
            table.add_column(justify="right")
            for name, value in rows:
                table.add_row(Text(self.redact(name)), Text(self.redact(value)))
            Console(file=sys.stdout, highlight=False).print(table)
            return
        # Escaped before the line is made: a newline from a server's text must not start a
        # line of its own (a forged row).
        shown = [(self.redact(name), self.redact(value)) for name, value in rows]
        width = max((len(name) for name, _ in shown), default=0)
        self.echo(self.redact(title))
        for name, value in shown:
            self.echo(f"  {name:<{width}}  {value}")

    def grid(
        self,
        title: str,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        right: Sequence[bool] = (),
    ) -> None:
        """A table with a header row; ``right[i]`` right-aligns column ``i`` (figures)."""
        aligned = [i < len(right) and right[i] for i in range(len(header))]
        if self.rich and sys.stdout.isatty():  # piped: lines a script can read, unwrapped
            from rich import box
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            table = Table(title=Text(self.redact(title)), box=box.SIMPLE, title_justify="left")
            for name, is_right in zip(header, aligned, strict=True):
                table.add_column(name, justify="right" if is_right else "left")
            for row in rows:
                table.add_row(*(Text(self.redact(cell)) for cell in row))
            Console(file=sys.stdout, highlight=False).print(table)
            return
        # Widths of the text as it will be printed (escaped), so the columns line up.
        shown = [[self.redact(cell) for cell in row] for row in [header, *rows]]
        widths = [max(len(row[i]) for row in shown) for i in range(len(header))]
        self.echo(self.redact(title))
        for row in shown:
            cells = (
                cell.rjust(width) if is_right else cell.ljust(width)
                for cell, width, is_right in zip(row, widths, aligned, strict=True)
            )
            self.echo("  " + "  ".join(cells).rstrip())


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class SdkWarnings(logging.Handler):
    """The SDK's WARNINGs, as the CLI shows them without `-v`: a 429's pause as a
    `warning:` line, masked like all output; a push that may have gone out is dropped here,
    since the command reports every outcome itself (one line, not two)."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, LOG_EVENT, None) == "rate_limited":
            self._out.echo(f"warning: {record.getMessage()}", err=True)
