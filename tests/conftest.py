"""Shared fixtures. Keep this file small: each test module owns its own helpers.

The wire is faked one way only, behind the Transport seam: ``tests/stub_transport.py``'s
``ScriptedTransport``, or FakeInsider over loopback where a real HTTP exchange matters.
"""
