"""The blocking `WebPushClient`, for Django views, Flask handlers, Celery tasks and threads.

```python
from insider_webpush.sync import WebPushClient

client = WebPushClient.from_env(redis_url="redis://redis:6379/0")  # once per process
result = client.send(push, dedupe_key=f"order-{order.id}:shipped")
```

It has the same operations and arguments as the asyncio
[`WebPushClient`][insider_webpush.client.WebPushClient], blocking until each is done. Every sync
client of a process runs on **one background event loop**, in a daemon thread started on
first use, so they share one aiohttp session per client, and the key's quota
([`shared_limiter`][insider_webpush.limiter.shared_limiter]) with each other and with any
asyncio client in the process, whatever thread calls them. A call is one coroutine handed to
that loop; the calling thread waits for its result (a `KeyboardInterrupt` while it waits
cancels it). Safe to call from many threads at once.

After `os.fork()` (a Celery prefork or gunicorn worker made after the client) the child
starts its own loop on first use; the parent's is left alone, never closed from the child.
At interpreter exit the loop closes every client still open, then itself, silently.
Calling a sync method from inside the background loop itself (e.g. from an `on_attempt`
hook) would wait forever, so it raises `RuntimeError` instead.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import os
import threading
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import Any, Self, TypeVar

from . import batch
from . import client as aio
from .ledger import Journal
from .metrics import PER_PAGE_DEFAULT, CampaignMetrics, CampaignSummary, TopMetrics
from .models import DEFAULT_LANGUAGE, LaunchResult, Timeouts, WebPush
from .sender import AttemptHook, PreparedLaunch

__all__ = ["WebPushClient"]

T = TypeVar("T")


class _Loop:
    """One event loop running forever in a daemon thread: the process's background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="insider-webpush loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "a blocking insider_webpush.sync call from inside its own event loop (an "
                "on_attempt hook?) would wait forever; use the asyncio WebPushClient there"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:  # KeyboardInterrupt while waiting: stop the work too
            future.cancel()
            raise

    def close(self) -> None:
        """End the loop as `asyncio.run` does: async generators (the sessions' closers,
        `insider_webpush._loops`), then stop and close."""
        if self.loop.is_closed():
            return
        try:
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()


_lock = threading.Lock()
_current: _Loop | None = None
_current_pid = 0
_orphans: list[_Loop] = []  # a parent's loops, inherited by fork: kept, never closed here
_clients: weakref.WeakSet[WebPushClient] = weakref.WeakSet()
_streams: weakref.WeakSet[Any] = weakref.WeakSet()  # open `stream` generators, async side


def _loop() -> _Loop:
    """This process's background loop, started on first use (and again after a fork)."""
    global _current, _current_pid
    with _lock:
        if _current is None or _current_pid != os.getpid():
            if _current is not None:
                _orphans.append(_current)  # its thread did not survive the fork
            _current, _current_pid = _Loop(), os.getpid()
        return _current


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # it may have been held by a thread that is gone


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_at_exit() -> None:
    """Close the clients still open, then the loop: no warning at interpreter exit."""
    current = _current
    if current is None or _current_pid != os.getpid() or current.loop.is_closed():
        return
    for outcomes in list(_streams):  # streams left unfinished: their workers stop first
        current.run(outcomes.aclose())
    for client in list(_clients):
        if not client.closed:
            current.run(client._client.close())
            client._closed = True
    current.close()


class WebPushClient:
    """The blocking client: `insider_webpush.WebPushClient`'s operations, one call at a time
    per thread, on this process's background event loop.

    Args:
        api_key: As for [`insider_webpush.WebPushClient`][insider_webpush.client.WebPushClient].
        **kwargs: Every other argument of the asyncio client (`partner_id`, `base_url`,
            `rate_limit`, `rate_period`, `retry`, `timeout`, `proxy`, `redis_url`,
            `redis_fallback_processes`, `dedupe_store`, `dedupe_ttl`, `limiter`,
            `transport`); a lent `session` is refused, since it would belong to another
            event loop.

    Raises:
        ValidationError: An argument is out of its range (as the asyncio client).
        MissingExtraError: As the asyncio client.
    """

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        if kwargs.get("session") is not None:
            from .errors import ValidationError

            raise ValidationError(
                "session",
                "the sync client runs on its own event loop; an aiohttp session belongs to "
                "the loop that made it: pass none (or use the asyncio client)",
            )
        self._client = aio.WebPushClient(api_key, **kwargs)
        self._closed = False
        _clients.add(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A client from `INSIDER_API_KEY`, `INSIDER_PARTNER_ID`, `INSIDER_BASE_URL`,
        `INSIDER_REDIS_URL` and `INSIDER_DEDUPE_STORE`, as
        [`insider_webpush.WebPushClient.from_env`][insider_webpush.client.WebPushClient.from_env].

        Args:
            **kwargs: Passed on to the constructor.

        Returns:
            The client.

        Raises:
            ValidationError: `INSIDER_API_KEY` is not set, or an argument is invalid.
        """
        api_key, kwargs = aio.settings_from_env(kwargs)
        return cls(api_key, **kwargs)

    @property
    def base_url(self) -> str:
        """The base URL, normalized."""
        return self._client.base_url

    @property
    def partner_id(self) -> str | None:
        """The client's partner id, or None."""
        return self._client.partner_id

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts of one attempt."""
        return self._client.timeouts

    @property
    def closed(self) -> bool:
        """`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"sync.{self._client!r}"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections; the background loop goes on for other clients.
        A closed client may be used again (it reopens them). Idempotent."""
        self._closed = True
        _loop().run(self._client.close())

    # -- operations: the asyncio client's, blocking ----------------------------------------

    def prepare_launch(
        self, push: WebPush, *, campaign_id: int | None = None, api_version: str = "v2"
    ) -> PreparedLaunch:
        """As [`WebPushClient.prepare_launch`][insider_webpush.client.WebPushClient.prepare_launch]
        (nothing is sent; no event loop involved)."""
        return self._client.prepare_launch(push, campaign_id=campaign_id, api_version=api_version)

    def send(
        self,
        push: WebPush,
        *,
        campaign_id: int | None = None,
        api_version: str = "v2",
        dedupe_key: str | None = None,
        retry_ambiguous: bool = False,
        on_attempt: AttemptHook | None = None,
    ) -> LaunchResult:
        """Launch `push`, blocking; as
        [`WebPushClient.send`][insider_webpush.client.WebPushClient.send] (the same arguments,
        result and errors). `on_attempt` runs on the background loop's thread."""
        self._closed = False
        return _loop().run(
            self._client.send(
                push,
                campaign_id=campaign_id,
                api_version=api_version,
                dedupe_key=dedupe_key,
                retry_ambiguous=retry_ambiguous,
                on_attempt=on_attempt,
            )
        )

    def send_prepared(
        self,
        launch: PreparedLaunch,
        *,
        on_attempt: AttemptHook | None = None,
        dedupe_key: str | None = None,
        retry_ambiguous: bool = False,
    ) -> LaunchResult:
        """As [`WebPushClient.send_prepared`][insider_webpush.client.WebPushClient.send_prepared],
        blocking."""
        self._closed = False
        return _loop().run(
            self._client.send_prepared(
                launch,
                on_attempt=on_attempt,
                dedupe_key=dedupe_key,
                retry_ambiguous=retry_ambiguous,
            )
        )

    def create(self, title: str, *, language: str = DEFAULT_LANGUAGE, is_all: bool = False) -> int:
        """Create a draft campaign, blocking; as
        [`WebPushClient.create`][insider_webpush.client.WebPushClient.create]."""
        self._closed = False
        return _loop().run(self._client.create(title, language=language, is_all=is_all))

    def delete(self, campaign_id: int) -> None:
        """Delete a draft campaign, blocking; as
        [`WebPushClient.delete`][insider_webpush.client.WebPushClient.delete]."""
        self._closed = False
        _loop().run(self._client.delete(campaign_id))

    def send_many(
        self,
        pushes: Iterable[batch.PushItem],
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | Journal | None = None,
        retry_ambiguous: bool = False,
        stop: threading.Event | None = None,
    ) -> batch.BatchResult:
        """Launch every push, blocking until all are done; as
        [`WebPushClient.send_many`][insider_webpush.client.WebPushClient.send_many].

        `pushes` is read on the background loop's thread, one item at a time. `stop` is a
        `threading.Event` here (set it from a signal handler or another thread): the batch
        then stops as the asyncio one does on its `asyncio.Event`.
        """
        self._closed = False

        async def run() -> batch.BatchResult:
            async with _bridge(stop) as event:
                return await self._client.send_many(
                    pushes,
                    concurrency=concurrency,
                    journal=journal,
                    retry_ambiguous=retry_ambiguous,
                    stop=event,
                )

        return _loop().run(run())

    def stream(
        self,
        pushes: Iterable[batch.PushItem],
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | Journal | None = None,
        retry_ambiguous: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[batch.Outcome]:
        """Yield each push's outcome as it finishes, in bounded memory; as
        [`WebPushClient.stream`][insider_webpush.client.WebPushClient.stream].

        Leave the loop early, or call the generator's `close()`, to stop the workers.
        """
        self._closed = False
        loop = _loop()
        bridge = _bridge(stop)

        async def start() -> Any:
            event = await bridge.__aenter__()
            return self._client.stream(
                pushes,
                concurrency=concurrency,
                journal=journal,
                retry_ambiguous=retry_ambiguous,
                stop=event,
            )

        outcomes = loop.run(start())
        return _blocking(loop, outcomes, lambda: bridge.__aexit__(None, None, None))

    def campaign_metrics(
        self, campaign_id: int, *, start_date: dt.date, end_date: dt.date
    ) -> CampaignMetrics:
        """One campaign's statistics, blocking; as
        [`WebPushClient.campaign_metrics`][insider_webpush.client.WebPushClient.campaign_metrics]."""
        self._closed = False
        return _loop().run(
            self._client.campaign_metrics(campaign_id, start_date=start_date, end_date=end_date)
        )

    def top_metrics(self, *, start_date: dt.date, end_date: dt.date) -> TopMetrics:
        """The account's statistics, blocking; as
        [`WebPushClient.top_metrics`][insider_webpush.client.WebPushClient.top_metrics]."""
        self._closed = False
        return _loop().run(self._client.top_metrics(start_date=start_date, end_date=end_date))

    def overall_metrics(
        self, *, start_date: dt.date, end_date: dt.date, per_page: int = PER_PAGE_DEFAULT
    ) -> Iterator[CampaignSummary]:
        """Every campaign in the interval, page after page, each page fetched when the one
        before is used up; as
        [`WebPushClient.overall_metrics`][insider_webpush.client.WebPushClient.overall_metrics]
        (arguments checked at the call). Leave the loop early to fetch nothing more."""
        self._closed = False
        loop = _loop()
        pages = self._client.overall_metrics(
            start_date=start_date, end_date=end_date, per_page=per_page
        )
        return _blocking(loop, pages, None)


def _blocking(
    loop: _Loop, items: AsyncIterator[T], finish: Callable[[], Awaitable[None]] | None
) -> Generator[T, None, None]:
    """An async iterator of the background loop as a blocking generator of the caller's
    thread; closing it closes the iterator (and runs `finish`) on that loop."""
    _streams.add(items)

    async def close() -> None:
        try:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if finish is not None:
                await finish()

    def pull() -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield loop.run(items.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            _streams.discard(items)
            if not loop.loop.is_closed():  # at exit, _close_at_exit closed it already
                loop.run(close())

    return pull()


class _Bridge:
    """An `asyncio.Event` of the background loop that follows a `threading.Event`."""

    def __init__(self, stop: threading.Event | None) -> None:
        self._stop = stop
        self._done = threading.Event()

    async def __aenter__(self) -> asyncio.Event | None:
        if self._stop is None:
            return None
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop, done = self._stop, self._done

        def watch() -> None:  # a thread: threading.Event has no callback to hook
            while not done.is_set():
                if stop.wait(0.05):
                    loop.call_soon_threadsafe(event.set)
                    return

        threading.Thread(target=watch, name="insider-webpush stop", daemon=True).start()
        return event

    async def __aexit__(self, *_: object) -> None:
        self._done.set()


def _bridge(stop: threading.Event | None) -> _Bridge:
    if stop is not None and not isinstance(stop, threading.Event):
        from .errors import ValidationError

        raise ValidationError("stop", f"must be a threading.Event, not {type(stop).__name__}")
    return _Bridge(stop)
