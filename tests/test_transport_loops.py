"""One client, many event loops: successive ``asyncio.run`` calls, a loop per thread, a loop
closed by hand, a lent session used from the wrong loop; and the loop-shutdown hook
(``insider_webpush._loops``) that closes each loop's session, with no warning anywhere.

FakeInsider runs in its own thread with its own loop (``fake_in_thread``), so the tests
themselves can start and end loops as a sync caller (Celery, Django) does.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from insider_webpush import FakeInsider, RetryPolicy, TransportError, WebPush, WebPushClient
from insider_webpush._loops import on_loop_close
from insider_webpush.outcomes import Stage
from insider_webpush.transport import AiohttpTransport, WireConnector

from .samples import MINIMAL_FIELDS

PUSH = WebPush(**MINIMAL_FIELDS)
FAST = RetryPolicy(base=0.01, cap=0.02)
ROOT = Path(__file__).resolve().parents[1]


class ThreadLoop:
    """An event loop running in its own thread until ``stop``; ``run`` submits to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Shut the loop down as asyncio.run does: async generators, then close."""
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def fake() -> Iterator[FakeInsider]:
    """A FakeInsider serving from a thread of its own, whatever loops the test runs."""
    server = ThreadLoop()
    insider = FakeInsider()
    server.run(insider.start())
    try:
        yield insider
    finally:
        server.run(insider.close())
        server.stop()


def _session(client: WebPushClient) -> aiohttp.ClientSession:
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.session is not None
    return transport.session


@pytest.fixture(autouse=True)
def nothing_left_open() -> Iterator[None]:
    """After each test, once its objects are unreachable: no warning from collecting them
    (an unclosed client, session, connector or socket would give one)."""
    yield
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


# -- successive asyncio.run calls, no `async with` ----------------------------------------


def test_one_client_in_successive_asyncio_run_calls(fake: FakeInsider) -> None:
    client = fake.client(retry=FAST)
    sessions = []

    async def send() -> None:
        result = await client.send(PUSH)
        assert result.campaign_id > 0
        sessions.append(_session(client))

    for _ in range(3):
        asyncio.run(send())  # as a sync caller does, with no `async with`
        # asyncio.run shut the loop down, and its session with it: nothing left open.
        assert sessions[-1].closed
    assert len({id(s) for s in sessions}) == 3  # one session per loop
    assert len(fake.launches) == 3
    asyncio.run(client.close())


def test_async_with_inside_each_asyncio_run(fake: FakeInsider) -> None:
    client = fake.client(retry=FAST)

    async def launch_twice() -> None:
        async with client:
            await client.send(PUSH)
            await client.send(PUSH)

    asyncio.run(launch_twice())
    asyncio.run(launch_twice())
    assert len(fake.launches) == 4


def test_asyncio_runner_keeps_one_session_across_its_runs(fake: FakeInsider) -> None:
    client = fake.client(retry=FAST)
    with asyncio.Runner() as runner:
        runner.run(client.send(PUSH))
        first = _session(client)
        runner.run(client.send(PUSH))
        assert _session(client) is first  # the same loop: the same session, kept open
        assert not first.closed
    assert first.closed  # closed with the runner's loop
    assert len(fake.launches) == 2


# -- threads, each with its own loop --------------------------------------------------------


def test_one_client_in_two_threads_at_once(fake: FakeInsider) -> None:
    client = fake.client(retry=FAST)
    both_sending = threading.Barrier(2, timeout=10)
    sessions: dict[str, aiohttp.ClientSession] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        async def main() -> None:
            await client.send(PUSH)
            sessions[name] = _session(client)
            await asyncio.to_thread(both_sending.wait)  # both loops hold a session now
            await asyncio.gather(*(client.send(PUSH) for _ in range(10)))

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sessions["a"] is not sessions["b"]
    assert sessions["a"].closed
    assert sessions["b"].closed
    assert len(fake.launches) == 22


def test_close_closes_the_sessions_of_loops_running_in_other_threads(fake: FakeInsider) -> None:
    client = fake.client(retry=FAST)
    other = ThreadLoop()
    try:
        other.run(client.send(PUSH))
        theirs = _session(client)

        async def main() -> aiohttp.ClientSession:
            await client.send(PUSH)
            ours = _session(client)
            await client.close()  # here, while the other loop still runs
            return ours

        ours = asyncio.run(main())
        assert ours is not theirs
        assert ours.closed
        assert theirs.closed  # closed in its own loop, before close() returned
        assert len(fake.launches) == 2
    finally:
        other.stop()


# -- a loop closed by hand -------------------------------------------------------------------


def test_a_loop_closed_by_hand_is_left_behind_without_a_runtime_error(
    fake: FakeInsider,
) -> None:
    client = fake.client(retry=FAST)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(client.send(PUSH))  # no shutdown_asyncgens() after this
    stale = _session(client)
    loop.close()
    assert not stale.closed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The next loop gets its own session; the old one is closed without its loop.
        asyncio.run(client.send(PUSH))
        assert stale.closed
        asyncio.run(client.close())
        del client, stale, loop
        gc.collect()
    assert len(fake.launches) == 2
    # What the hand-closed loop left open is asyncio's to report (its idle connection);
    # nothing of the SDK or aiohttp: no unclosed session, connector or client.
    for w in caught:
        message = str(w.message)
        assert w.category is ResourceWarning, message
        assert message.startswith(("unclosed transport", "unclosed <socket")), message


# -- a lent session ----------------------------------------------------------------------------


async def test_a_lent_session_used_from_another_loop_sends_nothing(fake: FakeInsider) -> None:
    async with aiohttp.ClientSession(connector=WireConnector()) as session:
        client = fake.client(session=session, retry=RetryPolicy(max_attempts=2, base=0.01))
        await client.send(PUSH)  # its own loop: fine

        def elsewhere() -> BaseException | None:
            try:
                asyncio.run(client.send(PUSH))
            except BaseException as exc:
                return exc
            return None

        error = await asyncio.to_thread(elsewhere)
        assert isinstance(error, TransportError)
        assert error.stage is Stage.NOT_SENT
        assert not error.ambiguous
        assert str(error).startswith(
            "the aiohttp session lent to WebPushClient belongs to another event loop; "
            "nothing was sent."
        )
        await client.send(PUSH)  # still fine in its own loop
        await client.close()
        assert not session.closed  # lent: never closed by the client
    assert len(fake.launches) == 2


# -- the loop-shutdown hook ----------------------------------------------------------------------


def test_on_loop_close_runs_callbacks_at_shutdown_last_first() -> None:
    ran: list[str] = []
    errors: list[object] = []

    async def slow(tag: str) -> None:
        await asyncio.sleep(0.01)  # awaited in the loop, which still runs
        ran.append(tag)

    def boom() -> None:
        raise ValueError("boom")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        on_loop_close(lambda: ran.append("sync"))
        on_loop_close(lambda: slow("async"))
        on_loop_close(boom)
        on_loop_close(lambda: ran.append("cancelled")).cancel()

    asyncio.run(main())
    assert ran == ["async", "sync"]
    assert [type(ctx["exception"]) for ctx in errors] == [ValueError]  # type: ignore[index]

    with asyncio.Runner() as runner:  # several runs of one loop: called once, at its close
        runner.run(main())
        runner.run(main())
        assert ran == ["async", "sync"]
    assert ran == ["async", "sync"] * 3

    with pytest.raises(RuntimeError):  # no running loop
        on_loop_close(lambda: None)


def test_pytest_asyncio_closes_the_session_when_its_loop_ends(tmp_path: Path) -> None:
    # A client left open by an async test, like a module-level client: pytest-asyncio's
    # runner shuts the test's loop down, and the session with it, before the next test.
    (tmp_path / "test_left_open.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            from insider_webpush import FakeInsider, WebPush

            PUSH = WebPush(title="t", description="d", ttl=60,
                           image="https://example.com/i.png", link="https://example.com")
            held = {}

            async def test_sends_and_leaves_the_client_open():
                async with FakeInsider() as fake:
                    held["client"] = client = fake.client()
                    await client.send(PUSH)
                    held["session"] = client._transport.session
                    assert not held["session"].closed

            def test_the_session_is_closed_with_its_loop():
                assert held["session"].closed
                asyncio.run(held.pop("client").close())
            """
        )
    )
    out = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
            "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
            "--rootdir", str(tmp_path), str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout
