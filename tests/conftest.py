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
