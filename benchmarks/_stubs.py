"""What the benchmarks put in place of the quota and of the wire, through the SDK's own seams.

``NoLimit`` lifts the limiter (every grant at once). ``StubTransport`` answers every request
at once, with no socket, after its gate, as a :class:`~insider_webpush.transport.Transport`
must: what is left is the SDK's own code.
"""

from __future__ import annotations

import math

from insider_webpush.models import Timeouts
from insider_webpush.transport import Gate, Request, Response

ANSWER = b'{"success": true, "campaign_id": 1697300275}'


class NoLimit:
    """The limiter lifted: every acquire returns at once."""

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        return None

    def penalize(self, seconds: float) -> None:
        return None

    def paused_for(self) -> float:
        return 0.0


class StubTransport:
    """Answers every request with a fixed success, with no socket."""

    _response = Response(200, {}, ANSWER)

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await gate()
        return self._response  # at once, as the bare side's stub session answers

    async def aclose(self) -> None:
        return None
