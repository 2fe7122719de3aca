"""pytest fixtures for code that uses insider-webpush: a local fake Insider and a client.

pytest loads this plugin by itself once insider-webpush is installed (the `pytest11` entry
point `insider_webpush`; `-p no:insider_webpush` turns it off). The fixtures are async:
they need pytest-asyncio (`pip install pytest-asyncio`), in either of its modes. In strict
mode mark the tests that use them `@pytest.mark.asyncio`; in auto mode nothing is needed.

- `insider_fake`: a started [`FakeInsider`][insider_webpush.testing.server.FakeInsider] on a
  free port of 127.0.0.1, closed after the test. Its key is `"test"`, its partner id
  `"10000001"`, its quota Insider's (6000 launches per 60 s); `insider_fake.requests`,
  `insider_fake.launches` and `insider_fake.count(...)` tell what it received,
  `insider_fake.faults` takes faults ([`Fault`][insider_webpush.testing.faults.Fault]) at any
  time.
- `insider_client`: an open [`WebPushClient`][insider_webpush.client.WebPushClient] aimed at
  `insider_fake` (`insider_fake.client()`: the fake's key, partner id, address and quota),
  closed after the test. For other client settings,
  `async with insider_fake.client(retry=..., ...)`.
- `insider_fake_options`: the keyword arguments `insider_fake` passes to `FakeInsider` (a
  dict; default: those of the test's `insider_fake` marker, else none). Set them for one test
  with the marker, or for a module or a directory by overriding the fixture:

```python
@pytest.mark.insider_fake(rate_limit=5, rate_period=0.5)  # this test only
async def test_quota(insider_fake, insider_client): ...

@pytest.fixture  # in a test module or a conftest.py: every test there
def insider_fake_options():
    return {"api_key": "my-key", "rate_limit": 50, "rate_period": 0.5}
```

Without pytest-asyncio the plugin still loads and stays out of the way; a test that asks for
`insider_fake` or `insider_client` then fails with a message saying to install it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from ..client import WebPushClient
    from .server import FakeInsider

try:
    import pytest_asyncio
except ImportError:  # not a dependency of the SDK: the fixtures say so when used
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

MARKER = "insider_fake"
_NEEDS_PYTEST_ASYNCIO = (
    "the insider_fake and insider_client fixtures of insider-webpush are async and need "
    "pytest-asyncio: pip install pytest-asyncio"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): FakeInsider keyword arguments for this test's insider_fake "
        "fixture, e.g. rate_limit=5, rate_period=0.5, api_key='my-key'",
    )


@pytest.fixture
def insider_fake_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The keyword arguments of `FakeInsider` for `insider_fake`: the test's
    `insider_fake` marker's (`@pytest.mark.insider_fake(rate_limit=5)`), else none.
    Override this fixture to set them for a module or a directory."""
    marker = request.node.get_closest_marker(MARKER)
    return dict(marker.kwargs) if marker is not None else {}


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def insider_fake(insider_fake_options: dict[str, Any]) -> AsyncIterator[FakeInsider]:
        """A started `FakeInsider` (key `"test"`, partner id `"10000001"`, Insider's
        quota, unless `insider_fake_options` says otherwise), closed after the test."""
        from .server import FakeInsider

        async with FakeInsider(**insider_fake_options) as fake:
            yield fake

    @pytest_asyncio.fixture
    async def insider_client(insider_fake: FakeInsider) -> AsyncIterator[WebPushClient]:
        """An open `WebPushClient` aimed at `insider_fake` (`insider_fake.client()`),
        closed after the test."""
        async with insider_fake.client() as client:
            yield client

else:

    @pytest.fixture(name="insider_fake")
    def _insider_fake_needs_pytest_asyncio() -> NoReturn:
        pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)

    @pytest.fixture(name="insider_client")
    def _insider_client_needs_pytest_asyncio() -> NoReturn:
        pytest.fail(_NEEDS_PYTEST_ASYNCIO, pytrace=False)
