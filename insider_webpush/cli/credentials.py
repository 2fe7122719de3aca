"""Where the key, the partner id and the base URL come from, and which values to mask.

The key comes from ``--api-key`` or ``INSIDER_API_KEY``; it is never printed: every value
the user may have given as a key is masked in all output (:mod:`.output`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import attrs

from ..endpoints import DEFAULT_BASE_URL
from ._common import UsageError

KEY_VARIABLE = "INSIDER_API_KEY"
PARTNER_VARIABLE = "INSIDER_PARTNER_ID"
URL_VARIABLE = "INSIDER_BASE_URL"
_KEY_FLAG = "--api-key"


@attrs.frozen
class Credentials:
    api_key: str = attrs.field(repr=False)
    partner_id: str | None
    base_url: str
    key_source: str  # what to check when the key is refused: the flag or the variable


def credentials(args: argparse.Namespace) -> Credentials:
    """The connection settings of ``args``, then the environment, then the defaults.

    Raises:
        UsageError: no key anywhere.
    """
    api_key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not api_key:
        raise UsageError(f"no API key: set {KEY_VARIABLE} (or pass {_KEY_FLAG})")
    return Credentials(
        api_key=api_key,
        partner_id=args.partner_id or os.environ.get(PARTNER_VARIABLE) or None,
        base_url=args.base_url or os.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL,
        key_source=_KEY_FLAG if args.api_key else KEY_VARIABLE,
    )


def secrets_in(argv: Sequence[str]) -> list[str]:
    """Every value the user may have given as a key, to be masked in anything printed.

    Mistyped flags count too (``--apikey``, ``--api_key``, ``--api-kee=``...): any option
    whose name looks like "api key", and the value that follows it.
    """
    found = [os.environ.get(KEY_VARIABLE, "")]
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, equals, value = arg.partition("=")
        if not _looks_like_key_flag(name):
            continue
        if equals:
            found.append(value)
        elif i + 1 < len(argv):
            found.append(argv[i + 1])
    return found


def _looks_like_key_flag(name: str) -> bool:
    letters = "".join(c for c in name.lower() if c.isalpha())
    return letters.startswith(("api", "key", "apik", "token", "secret")) or "key" in letters
