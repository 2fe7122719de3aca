"""The blocking client: the asyncio client's operations and arguments, from many threads, on
one background loop per process; after a fork; and silent at interpreter exit."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from insider_webpush import (
    DedupeConflictError,
    FakeInsider,
    LaunchResult,
    NotSentError,
    SlidingWindowLimiter,
    ValidationError,
    WebPush,
    sync,
)
from insider_webpush import client as aio

from .samples import MINIMAL_FIELDS
from .test_transport_loops import ThreadLoop

PUSH = WebPush(**MINIMAL_FIELDS)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake() -> Iterator[FakeInsider]:
    server = ThreadLoop()
    insider = FakeInsider(rate_limit=100_000)
    server.run(insider.start())
    try:
        yield insider
    finally:
        server.run(insider.close())
        server.stop()


@pytest.fixture
def client(fake: FakeInsider) -> Iterator[sync.WebPushClient]:
    with sync.WebPushClient(
        fake.api_key,
        partner_id="10000001",
        base_url=fake.base_url,
        limiter=SlidingWindowLimiter(100_000, 1.0),
    ) as made:
        yield made


def _operations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        and callable(member)
        and (
            inspect.iscoroutinefunction(member)
            or name in ("stream", "prepare_launch", "overall_metrics")
        )
        and name != "close"
    }


def test_every_operation_of_the_async_client_has_a_blocking_twin() -> None:
    """A new operation of the asyncio client fails this until the sync client has it too."""
    theirs = _operations(aio.WebPushClient)
    assert {"send", "send_many", "stream", "create", "delete"} <= set(theirs)
    missing = [name for name in theirs if not hasattr(sync.WebPushClient, name)]
    assert missing == []
    for name, signature in theirs.items():
        mine = inspect.signature(getattr(sync.WebPushClient, name))
        assert list(mine.parameters) == list(signature.parameters), name
        for param, theirs_param in signature.parameters.items():
            assert mine.parameters[param].default == theirs_param.default, (name, param)
            assert mine.parameters[param].kind == theirs_param.kind, (name, param)


def test_send_create_delete_block_and_return_what_the_async_client_returns(
    client: sync.WebPushClient, fake: FakeInsider
) -> None:
    result = client.send(PUSH)
    assert isinstance(result, LaunchResult)
    draft = client.create("a draft")
    client.delete(draft)
    assert [r.path.split("/")[1] for r in fake.requests] == ["v2", "v1", "v1"]


def test_many_threads_share_one_loop_one_session_and_one_quota(
    client: sync.WebPushClient, fake: FakeInsider
) -> None:
    loops: set[int] = set()

    def one(i: int) -> LaunchResult:
        def seen(_: int) -> None:
            loops.add(id(asyncio.get_running_loop()))

        return client.send(WebPush(**{**MINIMAL_FIELDS, "title": f"t{i}"}), on_attempt=seen)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(200)))
    assert len({r.campaign_id for r in results}) == 200
    assert len(loops) == 1  # every thread's call ran on the one background loop
    assert len(fake.launches) == 200


def test_dedupe_keys_through_the_sync_client(client: sync.WebPushClient) -> None:
    first = client.send(PUSH, dedupe_key="order-1:welcome")
    again = client.send(PUSH, dedupe_key="order-1:welcome")
    assert again == LaunchResult(True, first.campaign_id, replayed=True)
    with pytest.raises(DedupeConflictError, match="different push"):
        client.send(WebPush(**{**MINIMAL_FIELDS, "title": "other"}), dedupe_key="order-1:welcome")


def test_send_many_stream_and_a_threading_stop(
    client: sync.WebPushClient, fake: FakeInsider
) -> None:
    assert client.send_many([PUSH] * 5).counts["succeeded"] == 5
    titles = [WebPush(**{**MINIMAL_FIELDS, "title": f"s{i}"}) for i in range(7)]
    assert sorted(o.index for o in client.stream(titles)) == list(range(7))
    stop = threading.Event()
    stop.set()
    stopped = client.send_many([PUSH] * 5, stop=stop)
    assert all(isinstance(o.error, NotSentError) for o in stopped.failed)
    with pytest.raises(ValidationError, match=r"threading\.Event"):
        client.send_many([PUSH], stop=asyncio.Event())  # type: ignore[arg-type]


def test_leaving_a_stream_early_stops_its_workers(client: sync.WebPushClient) -> None:
    outcomes = client.stream([PUSH] * 50, concurrency=2)
    first = next(outcomes)
    outcomes.close()  # type: ignore[attr-defined]
    assert first.ok


def test_a_blocking_call_from_inside_the_loop_is_refused(client: sync.WebPushClient) -> None:
    def hook(_: int) -> None:
        client.send(PUSH)  # would wait on the loop it blocks

    with pytest.raises(RuntimeError, match="from inside its own event loop"):
        client.send(PUSH, on_attempt=hook)


def test_a_lent_session_is_refused() -> None:
    with pytest.raises(ValidationError, match="its own event loop"):
        sync.WebPushClient("k", session=object())


SCRIPT = """
import os, sys, warnings
warnings.simplefilter("error")
from insider_webpush import WebPush
from insider_webpush.sync import WebPushClient

push = WebPush(title="t", description="d", image="https://e.com/i.png", link="https://e.com",
               ttl=60)
client = WebPushClient("test", partner_id="10000001", base_url=sys.argv[1])
client.send(push)  # the parent's loop and session exist before the fork
MODE
"""


def _run(fake: FakeInsider, mode: str) -> subprocess.CompletedProcess[str]:
    code = SCRIPT.replace("MODE", textwrap.dedent(mode))
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code, fake.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_no_warning_at_interpreter_exit_with_a_client_left_open(fake: FakeInsider) -> None:
    done = _run(fake, "print('sent')")  # never closed: the exit hook closes it
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sent\n"
    assert done.stderr == ""


def test_after_a_fork_the_child_sends_on_a_loop_of_its_own(fake: FakeInsider) -> None:
    done = _run(
        fake,
        """
        pid = os.fork()
        if pid == 0:
            client.send(push)  # a new background loop in the child
            client.close()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.send(push)  # the parent's loop is untouched
        client.close()
        print("ok")
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""
    assert len(fake.launches) == 3


def test_a_stream_left_unfinished_at_exit_stops_silently(fake: FakeInsider) -> None:
    done = _run(
        fake,
        """
        outcomes = client.stream([push] * 20, concurrency=2)
        print(next(outcomes).ok)  # then the interpreter exits with the stream open
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True\n"
    assert done.stderr == ""
