"""Shared fixtures. Keep this file small: each test module owns its own helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL


# --- aioresponses on aiohttp >= 3.14 ------------------------------------------------------
# aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument aiohttp 3.14
# made required ("ClientResponse.__init__() missing ... 'stream_writer'"). Delete this block,
# and use plain `aioresponses()`, once https://github.com/pnuckowski/aioresponses/issues/289
# is fixed in a release.
class _Response(aiohttp.ClientResponse):
    def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
        writer = stream_writer if stream_writer is not None else Mock(output_size=0)
        super().__init__(*args, stream_writer=writer, **kwargs)


class MockInsider(aioresponses):  # type: ignore[misc]
    """aioresponses whose every registered response (``.post``, ``.add``, ...) uses the
    3.14-compatible response class; ``calls(method, url)`` lists the requests seen."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _Response)
        super().add(*args, **kwargs)

    def calls(self, method: str, url: str) -> list[Any]:
        return list(self.requests.get((method.upper(), URL(url)), []))


@pytest.fixture
def mock_insider() -> Iterator[MockInsider]:
    """Every aiohttp request in the test is answered by what the test registered; an
    unregistered URL fails with a ClientConnectionError (nothing reaches the network)."""
    with MockInsider() as mocked:
        yield mocked
