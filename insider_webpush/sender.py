"""What a batch needs of a client: prepare a launch once, then send exactly those bytes.

:class:`Sender` is the small protocol :mod:`insider_webpush.batch` depends on, so that the
batch composes a sender rather than importing :class:`~insider_webpush.WebPushClient`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple, Protocol

from .endpoints import Endpoint
from .models import LaunchResult, WebPush
from .transport import Request

__all__ = ["AttemptHook", "PreparedLaunch", "Sender"]

AttemptHook = Callable[[int], None]
"""Called with the attempt number (1, 2, ...) once the attempt's quota grant is taken, the
connection ready, immediately before its first byte is written. The journal writes ahead
from here."""


class PreparedLaunch(NamedTuple):
    """A launch encoded once: ``request.body`` is exactly what goes on the wire.

    (A named tuple: built on every send, and a tuple is the cheapest immutable record.)
    """

    push: WebPush
    campaign_id: int | None
    endpoint: Endpoint
    path: str
    request: Request

    @property
    def digest(self) -> bytes:
        """SHA-256 of the method, path and body bytes that are sent (not the host)."""
        method = self.request.method.encode()
        return hashlib.sha256(
            method + b" " + self.path.encode() + b"\n" + self.request.body
        ).digest()


class Sender(Protocol):
    """Prepares and sends launches; :class:`~insider_webpush.WebPushClient` is one."""

    def prepare_launch(
        self, push: WebPush, *, campaign_id: int | None = None, api_version: str = "v2"
    ) -> PreparedLaunch:
        """Validate and encode a launch, or raise ``ValidationError``; nothing is sent."""
        ...

    async def send_prepared(
        self, launch: PreparedLaunch, *, on_attempt: AttemptHook | None = None
    ) -> LaunchResult:
        """Send a prepared launch; raise an ``InsiderError`` when it failed."""
        ...
