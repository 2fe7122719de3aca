"""A scripted :class:`~insider_webpush.transport.Transport` for tests: no sockets.

Each send takes the next step of the script; unless that is ``Stage.NOT_SENT`` (which fails
before the gate, as on the wire), it awaits the gate (the quota grant, the journal's
write-ahead) exactly as the real transport does, records the request, then plays the step: a
``Response``-like tuple ``(status, body, headers)``, a ``Stage`` (a ``TransportError`` of
that stage), or an exception to raise. When the script runs out, ``default`` answers (a
success with a fresh campaign id when None).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from insider_webpush.errors import TransportError
from insider_webpush.models import Timeouts
from insider_webpush.outcomes import Stage
from insider_webpush.transport import Gate, Request, Response

Step = tuple[int, object] | tuple[int, object, Mapping[str, str]] | Stage | BaseException


@attrs.frozen
class Sent:
    """One request as the stub received it, after its gate: ``json`` is its decoded body."""

    request: Request
    timeouts: Timeouts

    @property
    def json(self) -> Any:
        return json.loads(self.request.body)

    @property
    def path(self) -> str:
        return "/" + self.request.url.split("/", 3)[3]


def _body(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode()


class ScriptedTransport:
    """Plays ``script`` one step a request; ``default`` afterwards (a success by default)."""

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        default: Step | None = None,
        latency: float = 0.0,
        record: bool = True,
    ) -> None:
        self._script = list(script)
        self._ids = itertools.count(1)
        self._default = default
        self.latency = latency
        self._record = record  # False: keep no request, for memory measurements
        self.sent: list[Sent] = []
        self.gated = 0  # gates passed (each one is a grant taken at the wire)
        self.closed = False

    def push(self, *steps: Step) -> None:
        self._script.extend(steps)

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        step: Step | None = self._script.pop(0) if self._script else self._default
        if step is None:
            step = (200, {"success": True, "campaign_id": next(self._ids)})
        if step is Stage.NOT_SENT:  # as on the wire: it failed before its grant and write
            raise TransportError("scripted failure before the write", stage=step)
        await gate()
        self.gated += 1
        if self._record:
            self.sent.append(Sent(request, timeouts))
        await asyncio.sleep(self.latency)  # a request suspends its caller; so does this
        if isinstance(step, Stage):
            raise TransportError(f"scripted failure at stage {step.name}", stage=step)
        if isinstance(step, BaseException):
            raise step
        status, body, *rest = step
        headers: Mapping[str, str] = rest[0] if rest else {}
        return Response(status, dict(headers), _body(body))

    async def aclose(self) -> None:
        self.closed = True
