"""What keeps long simulator runs cheap: bounded memos and shared strings.

A benchmark pushes 100,000 requests through the fake and keeps every record. Batches repeat
a few bodies and one header set, so the records share one decoded body per distinct byte
string, one redacted header set per distinct header set, and one verdict per distinct launch
body; equal strings inside bodies are interned. Each memo holds at most ``_SIZE`` entries
and is cleared when full, so memory stays bounded whatever the traffic.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Final, Generic, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

_SIZE: Final = 4096  # distinct keys remembered; cleared when full
_MAX_TEXT_BODY: Final = 1000  # characters of a non-JSON body kept in its record
REDACTED_AUTHORIZATION: Final = "Bearer <redacted>"

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """``compute(key)``, remembered for up to ``_SIZE`` distinct keys."""

    __slots__ = ("_compute", "_values")

    def __init__(self, compute: Callable[[K], V]) -> None:
        self._compute = compute
        self._values: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._compute(key)
        if len(self._values) >= _SIZE:
            self._values.clear()
        self._values[key] = value
        return value


class TextBody(str):
    """A body that was not JSON, kept as text (its first 1000 characters) for its record."""

    __slots__ = ()


def decode(raw: bytes) -> object:
    """The JSON of ``raw`` with equal strings shared, or a :class:`TextBody` if not JSON."""
    try:
        return _shared_strings(json.loads(raw))
    except ValueError:
        return TextBody(raw[:_MAX_TEXT_BODY].decode("utf-8", "replace"))


def redact(headers: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    """The header pairs as a read-only case-insensitive mapping, the key replaced."""
    return CIMultiDictProxy(
        CIMultiDict(
            (name, REDACTED_AUTHORIZATION if name.lower() == "authorization" else value)
            for name, value in headers
        )
    )


def _shared_strings(value: object) -> object:
    """``value`` with equal strings shared between records: a third of the memory."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _shared_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared_strings(v) for v in value]
    return value
