"""``insider-webpush demo``: pushes to an embedded fake at the real quota, no account needed."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from ..client import WebPushClient
from ..models import WebPush
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
    expected = args.count / tally.quota_per_second
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
            await run_stream(
                client, demo_pushes(args.count), view, tally, concurrency=args.concurrency
            )
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
