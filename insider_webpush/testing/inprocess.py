"""The fake behind the SDK's transport seam: each request handed over in process, no socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from ..errors import TransportError
from ..models import Timeouts
from ..outcomes import Stage
from ..transport import Gate, Request, Response
from ._answers import Answer

__all__ = ["InProcessTransport", "Responder"]

Responder = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[Answer | None]]
"""`(method, path, headers, body) -> answer` (None: the connection is dropped), as
[`FakeInsider.answer
<insider_webpush.testing.FakeInsider.answer>`][insider_webpush.testing.inprocess.FakeInsider.answer
<insider_webpush.testing.FakeInsider.answer>]."""


class InProcessTransport:
    """A [`Transport`][insider_webpush.transport.Transport] that hands each request to a fake's
    `respond` coroutine, with no socket and no HTTP parsing.

    A dropped connection, and an answer later than `timeouts.total`, are a
    [`TransportError`][insider_webpush.errors.TransportError] of stage `SENT`: the fake had the
    request.
    """

    def __init__(self, respond: Responder) -> None:
        self._respond = respond

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await gate()
        path = urlsplit(request.url).path
        try:
            async with asyncio.timeout(timeouts.total):
                answer = await self._respond(request.method, path, request.headers, request.body)
        except TimeoutError:
            raise TransportError("FakeInsider did not answer in time", stage=Stage.SENT) from None
        if answer is None:
            raise TransportError("FakeInsider dropped the connection", stage=Stage.SENT)
        return Response(answer.status, answer.headers or {}, answer.body)

    async def aclose(self) -> None:
        return None
