"""What a batch needs of a client: prepare a launch once, then send exactly those bytes.

[`Sender`][insider_webpush.sender.Sender] is the small protocol
[`insider_webpush.batch`][insider_webpush.batch] depends on, so that the batch composes a
sender rather than importing [`WebPushClient`][insider_webpush.client.WebPushClient].
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from .endpoints import Endpoint
from .models import LaunchResult, WebPush
from .transport import Request

__all__ = ["AttemptHook", "PreparedLaunch", "Sender"]

AttemptHook = Callable[[int], Awaitable[None] | None]
"""Called with the attempt number (1, 2, ...) once the attempt's quota grant is taken, the
connection ready, immediately before its first byte is written; what it returns, when not
None, is awaited before that byte. The journal takes its record here. A hook that raises
stops the attempt with nothing written."""


class PreparedLaunch(NamedTuple):
    """A launch encoded once: `request.body` is exactly what goes on the wire.

    (A named tuple: built on every send, and a tuple is the cheapest immutable record.)

    Attributes:
        push: The push.
        campaign_id: The draft it launches, or None for the literal path.
        endpoint: Launch v1's or v2's endpoint.
        path: The request's path, e.g. `/v2/single/25696`.
        request: The request: method, URL, body bytes and headers (the key among them).
    """

    push: WebPush
    campaign_id: int | None
    endpoint: Endpoint
    path: str
    request: Request

    @property
    def digest(self) -> bytes:
        """SHA-256 of the method, path and body bytes that are sent (not the host)."""
        request = self.request
        # One join, one copy of the body: each `+` would copy it again (once a push in a
        # journaled batch).
        return hashlib.sha256(
            b"".join((request.method.encode(), b" ", self.path.encode(), b"\n", request.body))
        ).digest()


class Sender(Protocol):
    """Prepares and sends launches;
    [`WebPushClient`][insider_webpush.client.WebPushClient] is one."""

    @property
    def ledger_namespace(self) -> str:
        """What a journal kept in a shared store is namespaced by (the base URL and the API
        key, hashed), so that one batch name of two accounts never mixes."""
        ...

    def prepare_launch(
        self, push: WebPush, *, campaign_id: int | None = None, api_version: str = "v2"
    ) -> PreparedLaunch:
        """Validate and encode a launch; nothing is sent.

        Args:
            push: The push.
            campaign_id: The draft to launch, a positive `int`, or None for the literal path.
            api_version: `"v2"` or `"v1"`.

        Returns:
            The launch, encoded once.

        Raises:
            ValidationError: The launch cannot be sent as given.
        """
        ...

    async def send_prepared(
        self,
        launch: PreparedLaunch,
        *,
        on_attempt: AttemptHook | None = None,
        dedupe_key: str | None = None,
        retry_ambiguous: bool = False,
    ) -> LaunchResult:
        """Send a prepared launch: exactly its bytes, on every attempt.

        Args:
            launch: From `prepare_launch`.
            on_attempt: Called with the attempt's number before each attempt's first byte.
            dedupe_key: Launch it at most once under this key, or None.
            retry_ambiguous: Send a dedupe key whose first attempt may have gone out.

        Returns:
            Insider's answer.

        Raises:
            InsiderError: The launch failed; its `ambiguous` says whether it may have gone
                out.
        """
        ...
