"""Test code that launches pushes without an Insider account or a network.

[`FakeInsider`][insider_webpush.testing.server.FakeInsider] is a real HTTP server on 127.0.0.1 that
speaks Insider's Single Web Push API: it checks the API key (`"test"` unless told another) and the
body of every request with the SDK's own models, keeps each quota group's sliding-window quota and
answers `429` with `Retry-After` when it is exceeded (the statistics endpoints: `403`), serves the
web push statistics of the launches it carried out (seeded figures), injects
faults ([`Fault`][insider_webpush.testing.faults.Fault]) on demand, and records every request as a
[`RecordedRequest`][insider_webpush.testing.records.RecordedRequest].

With pytest and pytest-asyncio, the fixtures `insider_fake` (a started `FakeInsider`) and
`insider_client` (a `WebPushClient` aimed at it) come with the package; see
[`insider_webpush.testing.plugin`][insider_webpush.testing.plugin]:

```python
import pytest
from insider_webpush import Fault, WebPush

pytestmark = pytest.mark.asyncio  # needed in pytest-asyncio's strict mode only

async def test_launch(insider_fake, insider_client):
    result = await insider_client.send(
        WebPush(title="Sale", description="50% off", ttl=3600,
                image="https://example.com/i.png", link="https://example.com")
    )
    assert insider_fake.launches[0].campaign_id == result.campaign_id

async def test_flaky_insider(insider_fake, insider_client):
    insider_fake.faults.append(Fault(status=503, at={0}))  # the first request: a 503
    insider_fake.faults.append(Fault.parse("drop:0.1"))  # 10 % lose their connection
    ...
```

Without the fixtures, `async with FakeInsider(rate_limit=50, rate_period=0.5) as fake:` and
`fake.client()` do the same, and `await fake.serve_forever()` serves until cancelled (the
`insider-webpush fake-server` command does that).

The package, one concern a module:

- [`simulator`][insider_webpush.testing.simulator]: the API as a pure function of requests, no I/O:
  key, contract, quota, faults and records (what it enforces is documented there);
- [`faults`][insider_webpush.testing.faults]: [`Fault`][insider_webpush.testing.faults.Fault] and
  [`Fault.parse`][insider_webpush.testing.faults.Fault.parse];
- [`records`][insider_webpush.testing.records]:
  [`RecordedRequest`][insider_webpush.testing.records.RecordedRequest];
- [`server`][insider_webpush.testing.server]:
  [`FakeInsider`][insider_webpush.testing.server.FakeInsider], the simulator on loopback HTTP;
- [`inprocess`][insider_webpush.testing.inprocess]: the simulator behind the SDK's transport seam;
- [`plugin`][insider_webpush.testing.plugin]: the pytest fixtures.

`FakeInsider` is imported on first use: `Fault`, `RecordedRequest` and
`DEFAULT_API_KEY` do not load the aiohttp server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import Fault
from .records import RecordedRequest
from .simulator import DEFAULT_API_KEY

if TYPE_CHECKING:
    from .server import FakeInsider

__all__ = ["DEFAULT_API_KEY", "FakeInsider", "Fault", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name == "FakeInsider":  # the aiohttp server: loaded when first asked for
        from .server import FakeInsider

        return FakeInsider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
