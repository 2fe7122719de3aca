"""A FastAPI service that launches pushes through one shared `WebPushClient`.

Shows how to hold ONE client for the application's lifetime (FastAPI's lifespan opens it at
startup and closes it at shutdown), so every request shares its connection pool and its
quota, and how to turn the SDK's errors into HTTP answers that tell the caller the truth:

- the push breaks a rule (`ValidationError`): **422**, naming the field; nothing was sent;
- Insider may have launched it although the call failed (`error.ambiguous`: a 5xx, or no
  complete answer): **502**, or **504** when no answer came, with `"may_have_gone_out":
  true`: resending may notify every subscriber twice;
- the key's quota is exhausted (`RateLimitError`): **503** with `Retry-After`;
- any other failure, certain (nothing went out): **502** with `"may_have_gone_out": false`.

`POST /pushes` takes a push as JSON with the launch body's field names (`title`,
`description`, `image`, `link`, `ttl`, optional `banner`, `language`, `target`...) and an
optional `?campaign_id=` draft to launch; it answers `{"campaign_id": ...}`.

Needs the `examples` extra (``pip install 'insider-webpush[examples]'``). Run it against your
Insider account::

    export INSIDER_API_KEY=...  INSIDER_PARTNER_ID=...
    uvicorn fastapi_service:app --app-dir examples --port 8000

or against the local fake (``insider-webpush fake-server --port 8080`` in another terminal,
and ``INSIDER_API_KEY=test INSIDER_PARTNER_ID=10000001
INSIDER_BASE_URL=http://127.0.0.1:8080`` in front of the uvicorn command), then::

    curl -s localhost:8000/pushes -H 'Content-Type: application/json' -d '{"title": "Sale",
      "description": "50% off", "image": "https://example.com/i.png",
      "link": "https://example.com", "ttl": 3600}'
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Request

from insider_webpush import (
    InsiderError,
    RateLimitError,
    TransportError,
    ValidationError,
    WebPushClient,
    push_from_dict,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client for the whole app: made before the first request, closed after the last.
    # INSIDER_API_KEY, INSIDER_PARTNER_ID and, optionally, INSIDER_BASE_URL.
    async with WebPushClient.from_env() as client:
        app.state.push_client = client
        yield


app = FastAPI(title="insider-webpush example", lifespan=lifespan)


def http_error(exc: InsiderError) -> HTTPException:
    """The HTTP answer for an SDK error: the status says who failed, the body whether the
    push may have gone out."""
    if isinstance(exc, ValidationError):
        return HTTPException(422, {"field": exc.field, "error": exc.message})
    if exc.ambiguous:
        # Insider may have launched it: the caller must not resend it blindly.
        status = 504 if isinstance(exc, TransportError) else 502
        detail = {"error": str(exc), "may_have_gone_out": True}
        return HTTPException(status, detail)
    if isinstance(exc, RateLimitError):
        retry_after = exc.retry_after
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else None
        return HTTPException(503, {"error": str(exc), "may_have_gone_out": False}, headers)
    return HTTPException(502, {"error": str(exc), "may_have_gone_out": False})


@app.post("/pushes")
async def launch(
    push: Annotated[dict[str, Any], Body()], request: Request, campaign_id: int | None = None
) -> dict[str, int]:
    client: WebPushClient = request.app.state.push_client
    try:
        result = await client.send(push_from_dict(push), campaign_id=campaign_id)
    except InsiderError as exc:
        raise http_error(exc) from exc
    return {"campaign_id": result.campaign_id}
