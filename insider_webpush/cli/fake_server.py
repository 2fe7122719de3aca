"""``insider-webpush fake-server``: FakeInsider on a port until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from ..testing import DEFAULT_API_KEY, FakeInsider, Fault
from ._common import EXIT_OK
from .credentials import KEY_VARIABLE
from .output import Output


async def run(args: argparse.Namespace, out: Output) -> int:
    faults: list[Fault] = args.fault
    api_key = os.environ.get(KEY_VARIABLE) or DEFAULT_API_KEY
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, stop.set)
    async with FakeInsider(
        api_key=api_key,
        partner_id=args.partner_id,
        rate_limit=args.rate_limit,
        rate_period=args.rate_period,
        host=args.host,
        port=args.port,
        faults=faults,
        seed=args.seed,
    ) as fake:
        key_source = (
            f"the key in {KEY_VARIABLE}"
            if os.environ.get(KEY_VARIABLE)
            else f"the key {DEFAULT_API_KEY!r} (set {KEY_VARIABLE} to choose one)"
        )
        out.echo(f"FakeInsider listening on {fake.base_url}")
        out.echo(
            f"  accepts {key_source} and partner id {args.partner_id}; quota "
            f"{args.rate_limit} per {args.rate_period:g} s; {len(faults)} fault rule(s)"
        )
        out.echo(f"  export INSIDER_BASE_URL={fake.base_url}")
        out.echo("  Ctrl-C to stop")
        await stop.wait()
        out.echo(
            f"stopped: {len(fake.requests)} requests, {len(fake.launches)} launches, "
            f"{fake.count(status=429)} answered 429"
        )
    return EXIT_OK
