"""The client's lifecycle: what construction checks up front, and the warning of a client that
is garbage-collected without being closed."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest

from insider_webpush import FakeInsider, ValidationError, WebPush, WebPushClient
from insider_webpush.transport import AiohttpTransport

from .samples import MINIMAL_FIELDS

PUSH = WebPush(**MINIMAL_FIELDS)
UNCLOSED = r"Unclosed WebPushClient WebPushClient\(base_url="


@pytest.fixture
async def fake() -> AsyncIterator[FakeInsider]:
    async with FakeInsider() as server:
        yield server


def _session_of(client: WebPushClient) -> aiohttp.ClientSession:
    transport = client._transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.session is not None
    return transport.session


def _drop(held: list[WebPushClient]) -> None:
    """Let go of the last reference to the clients in ``held``, and collect them."""
    held.clear()
    gc.collect()


def _client_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "WebPushClient" in str(w.message)
    ]


# -- redis_url without redis-py ------------------------------------------------------------


def test_redis_url_without_redis_py_fails_at_construction_naming_the_extra() -> None:
    # The path finder, wrapped so that it finds no redis: as if the extra were not installed.
    code = textwrap.dedent(
        """
        import sys
        from importlib.machinery import PathFinder

        class NoRedis(PathFinder):
            @classmethod
            def find_spec(cls, name, path=None, target=None):
                if name == "redis" or name.startswith("redis."):
                    return None
                return super().find_spec(name, path, target)

        sys.meta_path[:] = [NoRedis if f is PathFinder else f for f in sys.meta_path]
        assert NoRedis in sys.meta_path and "redis" not in sys.modules

        from insider_webpush import InsiderError, MissingExtraError, WebPushClient

        try:
            import redis  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let redis through")
        WebPushClient("k", partner_id="1")  # no redis_url: no redis needed
        try:
            WebPushClient("k", partner_id="1", redis_url="redis://127.0.0.1:6379/0")
        except MissingExtraError as exc:
            assert isinstance(exc, InsiderError)
            assert isinstance(exc, ImportError)  # `except ImportError` catches it too
            assert isinstance(exc.__cause__, ImportError)
            print("error:", exc)
        else:
            raise SystemExit("no error")
        """
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "error: redis_url needs redis-py: pip install 'insider-webpush[redis]'" in out.stdout


# -- ResourceWarning for a client left unclosed --------------------------------------------


async def test_a_client_that_opened_its_session_warns_when_collected_unclosed(
    fake: FakeInsider,
) -> None:
    client = fake.client()
    await client.send(PUSH)  # opens the client's own aiohttp session
    session = _session_of(client)  # kept, to close it after: only the client is leaked
    held = [client]
    del client
    with pytest.warns(ResourceWarning) as caught:
        _drop(held)
    await session.close()
    (message,) = _client_warnings(list(caught))  # aiohttp's own warnings may come beside it
    assert message.startswith("Unclosed WebPushClient WebPushClient(base_url=")
    assert "'async with WebPushClient(...) as client:'" in message
    assert "'await client.close()'" in message
    assert fake.api_key not in message


async def test_an_entered_client_warns_when_collected_without_leaving(fake: FakeInsider) -> None:
    client = fake.client(in_process=True)  # a lent transport: no session of its own
    await client.__aenter__()
    await client.send(PUSH)
    held = [client]
    del client
    with pytest.warns(ResourceWarning, match=UNCLOSED):
        _drop(held)


async def test_no_warning_for_a_client_never_used_or_closed(fake: FakeInsider) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        never_used = fake.client()
        del never_used

        async with fake.client() as entered:
            await entered.send(PUSH)
        del entered

        closed = fake.client()
        await closed.send(PUSH)
        await closed.close()
        del closed

        reopened = fake.client()  # closed, used again, closed again
        await reopened.send(PUSH)
        await reopened.close()
        await reopened.send(PUSH)
        await reopened.close()
        del reopened

        lent = fake.client(in_process=True)  # holds nothing of its own to close
        await lent.send(PUSH)
        del lent

        with pytest.raises(ValidationError):  # half-built by a constructor that raised
            WebPushClient("k", redis_fallback_processes=0)
        gc.collect()
    assert _client_warnings(caught) == []
    assert len(fake.launches) == 5


async def test_a_client_used_again_after_close_warns_if_left_open(fake: FakeInsider) -> None:
    client = fake.client()
    async with client:
        await client.send(PUSH)
    await client.send(PUSH)  # a new session, which nothing closes
    session = _session_of(client)
    held = [client]
    del client
    with pytest.warns(ResourceWarning) as caught:
        _drop(held)
    await session.close()
    assert len(_client_warnings(list(caught))) == 1
