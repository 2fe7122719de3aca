"""Report how the last week's web push campaigns did.

Lists every campaign launched in the last 7 days with its delivery and click-through rates
(`overall_metrics`, page after page), then prints the delivery funnel and the drop-off
reasons of the campaign with the most clicks (`campaign_metrics`). Every figure is a
number: counts are ints, rates are fractions (format them with `:.1%`).

The three statistics endpoints share a quota of 30 requests a minute per key: a week of a
few hundred campaigns is a few pages, read in seconds; the client waits for the quota
itself.

Run it against your Insider account::

    export INSIDER_API_KEY=...  INSIDER_PARTNER_ID=...
    python examples/statistics.py

or against the local fake, after launching a few pushes there (another terminal)::

    insider-webpush fake-server --port 8080
    export INSIDER_API_KEY=test INSIDER_PARTNER_ID=10000001 INSIDER_BASE_URL=http://127.0.0.1:8080
    python examples/quickstart.py && python examples/statistics.py

It prints one line per campaign and the funnel, or the error and exits 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from insider_webpush import InsiderError, WebPushClient


async def main() -> int:
    today = dt.date.today()
    week_ago = today - dt.timedelta(days=6)
    try:
        async with WebPushClient.from_env() as client:
            campaigns = [
                campaign
                async for campaign in client.overall_metrics(start_date=week_ago, end_date=today)
            ]
            if not campaigns:
                print(f"no campaign from {week_ago} to {today}")
                return 0
            for c in campaigns:
                print(
                    f"{c.campaign_id:>10}  {c.name[:32]:<32}  sent {c.sent:>9,}  "
                    f"delivered {c.delivery_rate:6.1%}  ctr {c.ctr:6.2%}"
                )
            best = max(campaigns, key=lambda c: c.clicks)
            # Insider refuses a start before the campaign was created (a 422).
            created = best.starts_at.date() if best.starts_at is not None else week_ago
            metrics = await client.campaign_metrics(
                best.campaign_id, start_date=created, end_date=today
            )
    except InsiderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\nthe most clicked: {best.campaign_id} {metrics.name!r}")
    targeted = metrics.overview.targeted or 1
    for step, count in metrics.overview.funnel():
        print(f"  {step:<10} {count:>10,}  {count / targeted:7.2%}")
    for title, reasons in (("dropped", metrics.dropped), ("undelivered", metrics.undelivered)):
        print(f"  {title}: " + ", ".join(f"{r.label} {r.count:,} ({r.share:.0%})" for r in reasons))
    print(f"  revenue: {metrics.overview.revenue}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
