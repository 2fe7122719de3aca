"""FakeInsider behind the transport seam: the same fake in process, with no socket."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from insider_webpush import (
    AuthenticationError,
    FakeInsider,
    Fault,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    WebPush,
    push_to_dict,
)
from insider_webpush.models import Timeouts
from insider_webpush.outcomes import Stage

KEY = "sk-test-0123456789-SECRET"
PARTNER = "10000001"
PUSH = WebPush(
    title="title of push",
    description="description of push",
    image="https://image.useinsider.com/icon.jpeg",
    link="https://example.com/",
    ttl=1000,
    partner_id=PARTNER,
)
BODY = push_to_dict(PUSH)
ONCE = RetryPolicy.never()


def fake_insider(**kwargs: Any) -> FakeInsider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("partner_id", PARTNER)
    return FakeInsider(**kwargs)


async def test_the_in_process_transport_is_the_same_fake_without_a_socket() -> None:
    fake = fake_insider(rate_limit=3, rate_period=60.0)  # never started: no socket at all
    fake.faults.append(Fault(drop=True, processed=True, at={1}))
    # The client's own limiter is told 100: it is the fake's quota that must answer the 429.
    async with fake.client(in_process=True, retry=ONCE, rate_limit=100) as client:
        first = await client.send(PUSH)
        with pytest.raises(TransportError) as dropped:
            await client.send(PUSH)
        await client.send(PUSH)
        with pytest.raises(RateLimitError):  # the fake's own quota: the fourth launch
            await client.send(PUSH)
    assert dropped.value.stage is Stage.SENT
    assert dropped.value.ambiguous
    assert [r.status for r in fake.requests] == [200, None, 200, 429]
    assert [r.campaign_id for r in fake.launches] == [first.campaign_id, 1002, 1003]
    assert fake.requests[0].headers["Authorization"] == "Bearer <redacted>"
    assert fake.requests[0].body == BODY


async def test_the_in_process_transport_times_out_a_late_answer_as_sent() -> None:
    fake = fake_insider()
    fake.faults.append(Fault(latency=5.0))
    async with fake.client(in_process=True, retry=ONCE, timeout=Timeouts(total=0.1)) as client:
        with pytest.raises(TransportError) as late:
            await client.send(PUSH)
    assert late.value.ambiguous  # the fake processed it on arrival: it may have gone out
    assert len(fake.launches) == 1


async def test_a_short_latency_is_waited_out_in_process() -> None:
    fake = fake_insider(faults=[Fault(latency=0.05, status=503, at={0})])
    async with fake.client(in_process=True, retry=ONCE) as client:
        with pytest.raises(ServerError) as caught:
            await client.send(PUSH)
    assert caught.value.status == 503
    assert fake.launches == []


async def test_the_fake_client_takes_another_key_to_test_a_401() -> None:
    fake = fake_insider()
    async with fake.client(in_process=True, api_key="not-the-key", retry=ONCE) as client:
        with pytest.raises(AuthenticationError):
            await client.send(PUSH)
    assert [r.status for r in fake.requests] == [401]


async def test_the_default_fake_works_in_process_with_no_arguments() -> None:
    fake = FakeInsider()
    async with fake.client(in_process=True, retry=ONCE) as client:
        await client.send(attrs.evolve(PUSH, partner_id=None))
    assert fake.count(200) == len(fake.launches) == 1
