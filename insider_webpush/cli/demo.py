"""``insider-webpush demo``: pushes to an embedded fake at the real quota, no account needed."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator

from ..client import WebPushClient
from ..models import WebPush
from ..pushfile import read_pushes, write_pushes
from ..testing import FakeInsider
from ._common import DEMO_PARTNER, EXIT_FAILED, EXIT_OK
from .output import Output
from .progress import Tally, progress_view, run_stream
from .report import print_failures, summary_rows

DEMO_KEY = "demo-key"  # the embedded fake's key: not a secret, and still never printed


def demo_pushes(count: int) -> Iterator[WebPush]:
    for i in range(count):
        yield WebPush(
            title=f"Demo push {i + 1}",
            description="Sent by insider-webpush demo to a local fake server.",
            image="https://example.com/icon.png",
            link="https://example.com/",
            ttl=3600,
        )


async def run(args: argparse.Namespace, out: Output) -> int:
    rate_limit: int = args.rate_limit
    period: float = args.rate_period
    tally = Tally(args.count, rate_limit / period)
    with tempfile.TemporaryDirectory(prefix="insider-webpush-demo-") as folder:
        # The pushes go through a push file, as a batch's would (insider_webpush.pushfile).
        path = os.path.join(folder, "demo-pushes.jsonl")
        write_pushes(demo_pushes(args.count), path)
        return await _send(args, out, tally, path)


async def _send(args: argparse.Namespace, out: Output, tally: Tally, path: str) -> int:
    rate_limit: int = args.rate_limit
    period: float = args.rate_period
    expected = args.count / tally.quota_per_second
    # The embedded fake is on this machine: a proxy named by the environment (HTTPS_PROXY,
    # HTTP_PROXY) must not carry the demo's requests away from it.
    for name in ("no_proxy", "NO_PROXY"):
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), "127.0.0.1")))
    async with FakeInsider(
        api_key=DEMO_KEY, partner_id=DEMO_PARTNER, rate_limit=rate_limit, rate_period=period
    ) as fake:
        out.echo(
            f"demo: {args.count} pushes to an embedded FakeInsider at {fake.base_url}, through "
            f"the real client at the quota of {rate_limit} per {period:g} s "
            f"(about {expected:.0f} s)",
            err=True,
        )
        async with WebPushClient(
            DEMO_KEY,
            partner_id=DEMO_PARTNER,
            base_url=fake.base_url,
            rate_limit=rate_limit,
            rate_period=period,
        ) as client:
            view = progress_view(out, "demo", tally, args.progress_interval)
            await run_stream(client, read_pushes(path), view, tally, concurrency=args.concurrency)
        busiest = fake.max_in_window(period)
        rejected = fake.count(status=429)
    rows = summary_rows(tally)
    rows += [
        (f"most requests in any {period:g} s window", f"{busiest} (quota {rate_limit})"),
        ("429s from the server", str(rejected)),
    ]
    out.table("demo summary", rows)
    print_failures(out, tally)
    return EXIT_OK if tally.failed == 0 and busiest <= rate_limit else EXIT_FAILED
