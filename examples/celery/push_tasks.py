"""A Celery app whose task launches one web push, at most once per dedupe key, fleet-wide.

Every worker process of every host shares one Redis: it is Celery's broker and result
backend, the API key's quota (no window ever holds more than the quota, whatever the number
of workers) and the dedupe store (a key is launched at most once, however often its task
runs: a retry, a redelivery after a worker died, the same event enqueued twice).

Start a worker (``README.md`` beside this file says more)::

    export REDIS_URL=redis://127.0.0.1:6379/0
    export INSIDER_API_KEY=...  INSIDER_PARTNER_ID=...
    celery --workdir examples/celery -A push_tasks worker --pool prefork --concurrency 4 -O fair

and enqueue from any process that can import this module::

    send_push.delay(push_dict, "order-4711:welcome")

Needs the `examples` and `redis` extras (``pip install 'insider-webpush[examples,redis]'``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task

from insider_webpush import (
    DedupeConflictError,
    InsiderError,
    RateLimitError,
    RetryPolicy,
    TransportError,
    push_from_dict,
)
from insider_webpush.sync import WebPushClient

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("push_tasks", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    # Acknowledge a task once it has run, not when a worker takes it: a task whose worker
    # process dies (OOM kill, deploy, SIGKILL) is delivered again, at once, to another one.
    # The dedupe key makes that second run safe: what the first launched is not launched again.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,  # each process holds one task; the rest wait in Redis
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)

logger = logging.getLogger(__name__)

# One client for every task of the worker: made once at import, in the worker's main
# process. Each pool process forked from it runs its own event loop and connections; the
# quota and the dedupe keys are shared by every process through Redis.
# INSIDER_API_KEY, INSIDER_PARTNER_ID and, optionally, INSIDER_BASE_URL; the quota is
# Insider's 6000 per minute unless Insider raised yours (INSIDER_RATE_LIMIT per
# INSIDER_RATE_PERIOD seconds); INSIDER_TIMEOUT, the seconds an attempt may take (10).
client = WebPushClient.from_env(
    redis_url=REDIS_URL,  # the quota, and the dedupe store (dedupe_store= to choose another)
    rate_limit=int(os.environ.get("INSIDER_RATE_LIMIT", "6000")),
    rate_period=float(os.environ.get("INSIDER_RATE_PERIOD", "60")),
    # Wait little inside a task: a long backoff would hold a worker process idle, while
    # Celery's own retry (below) waits without holding one. A short attempt, backoff and
    # Retry-After also shorten how long the key of a worker that died mid-request counts as
    # in flight for the others (the sum of the three + 1 s: 18 s here, 181 s with the
    # client's defaults) before it is reported ambiguous.
    timeout=float(os.environ.get("INSIDER_TIMEOUT", "10")),  # seconds an attempt may take
    retry=RetryPolicy(max_attempts=3, cap=2.0, max_retry_after=5.0),
)

IN_FLIGHT_RETRY = 2.0  # seconds: a key being launched elsewhere is asked about again then
IN_FLIGHT_RETRIES = 15  # 30 s of asking: longer than a dead holder's 18 s (at 10 s a try)
TRANSIENT_RETRY = 10.0  # seconds: the quota or the network failed, nothing went out


@app.task(bind=True, max_retries=10)
def send_push(self: Task, push: dict[str, Any], dedupe_key: str) -> dict[str, Any]:
    """Launch `push` (the launch body's fields, as JSON) once per `dedupe_key`.

    Returns `{"dedupe_key", "campaign_id", "replayed"}` (`replayed`: an earlier run had
    launched it; nothing was sent now), or `{"dedupe_key", "ambiguous": True, "error"}`
    when a run may have launched it without a confirmation: it is never sent again
    automatically (a person decides, e.g. from the campaign list in Insider's panel).
    Raises a certain failure that no retry can fix (a push that breaks a rule, a wrong key,
    a key already launched for another push).
    """
    try:
        result = client.send(push_from_dict(push), dedupe_key=dedupe_key)
    except DedupeConflictError as exc:
        if exc.in_flight:
            # Its first attempt is in flight in another process: ask again until that one
            # ends (a replay), or its holder is found dead (then it is reported ambiguous).
            raise self.retry(
                exc=exc, countdown=IN_FLIGHT_RETRY, max_retries=IN_FLIGHT_RETRIES
            ) from exc
        if exc.ambiguous:
            return _ambiguous(dedupe_key, exc)
        raise  # the key was launched for another push: a bug in whoever chose the key
    except InsiderError as exc:
        if exc.ambiguous:  # e.g. a 5xx or a lost answer: it may have gone out
            return _ambiguous(dedupe_key, exc)
        # Certain failures: nothing went out. The quota or the network may allow it later.
        if isinstance(exc, RateLimitError):
            raise self.retry(exc=exc, countdown=exc.retry_after or TRANSIENT_RETRY) from exc
        if isinstance(exc, TransportError):
            raise self.retry(exc=exc, countdown=TRANSIENT_RETRY) from exc
        raise  # a push that breaks a rule, a wrong key: no retry can fix it
    return {
        "dedupe_key": dedupe_key,
        "campaign_id": result.campaign_id,
        "replayed": result.replayed,
    }


def _ambiguous(dedupe_key: str, exc: InsiderError) -> dict[str, Any]:
    logger.error("push %s may have been launched; not sending it again: %s", dedupe_key, exc)
    return {"dedupe_key": dedupe_key, "ambiguous": True, "error": str(exc)}
