"""Shared fixtures. Keep this file small: each test module owns its own helpers.

The wire is faked one way only, behind the Transport seam: ``tests/stub_transport.py``'s
``ScriptedTransport``, or FakeInsider over loopback where a real HTTP exchange matters.
"""

import pytest

from insider_webpush import ledger, limiter


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no shared limiter: the registry lives as long as the process
    (that is the point: one quota per process), and a 429 pause or a burst of one test must
    not carry into the next one that happens to use the same base URL and key."""
    monkeypatch.setattr(limiter, "_registry", {})
    # Likewise the in-memory dedupe store, one per process.
    monkeypatch.setattr(ledger.MemoryLedger, "_entries", {})


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite does not depend on this machine's proxy settings: the SDK honours
    HTTPS_PROXY and friends by default (tests/test_proxy.py sets them where it means to)."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
