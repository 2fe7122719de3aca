"""``insider-webpush stats campaign|top|overall``: what became of the pushes.

Each subcommand makes the client's read (``campaign_metrics``, ``top_metrics``,
``overall_metrics``) and shows it as a table (:mod:`.stats_view`), as JSON with ``--json``,
and as a funnel chart with ``--plot FILE.png`` (:mod:`.funnel_plot`). Everything that can be
checked here (the dates, matplotlib, the PNG's folder, the partner id) is checked before
anything is sent.

``stats overall --json`` writes JSON lines, one campaign a line, as the pages arrive: the
statistics quota is 30 requests a minute, so a long listing shows its first campaigns at
once and a consumer never holds them all.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from typing import Any

import attrs

from ..client import WebPushClient
from ..endpoints import STATISTICS
from ..errors import AuthenticationError
from ..metrics import CampaignMetrics, Reason, TopMetrics
from ._common import EXIT_OK, UsageError
from .credentials import PARTNER_VARIABLE, credentials
from .fatal import refused
from .output import Output
from .stats_view import (
    FunnelTotals,
    campaign_json,
    interval,
    overall_row,
    show_campaign,
    show_overall,
    show_top,
    to_json,
)

__all__ = ["dates", "run"]


def dates(args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    """``--since`` and ``--until`` (today, the local date, when not given).

    Raises:
        UsageError: ``--until`` is before ``--since``.
    """
    since: dt.date = args.since
    until: dt.date = args.until if args.until is not None else dt.date.today()
    if until < since:
        given = "" if args.until is not None else " (today, when --until is not given)"
        raise UsageError(
            f"--until {until.isoformat()}{given} is before --since {since.isoformat()}; "
            "nothing was sent"
        )
    return since, until


def _dump(data: Any) -> str:
    """One line of JSON: readable non-ASCII text, but every unprintable character (a DEL, a C1
    control, a bidirectional override from a campaign's name) as a JSON `\\u` escape, so the
    line stays valid JSON and nothing reaches the terminal raw."""
    text = json.dumps(data, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _json_escape(c) for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: JSON's surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


async def run(args: argparse.Namespace, out: Output) -> int:
    since, until = dates(args)
    if args.plot is not None:
        from .funnel_plot import check_plot_path, require_matplotlib

        require_matplotlib()
        check_plot_path(args.plot)
    creds = credentials(args)
    if creds.partner_id is None:
        raise UsageError(f"no partner id: set {PARTNER_VARIABLE} (or pass --partner-id)")
    async with WebPushClient(
        creds.api_key,
        **creds.client_options(),
        quotas={STATISTICS: (args.rate_limit, args.rate_period)},
    ) as client:
        try:
            if args.stats_command == "campaign":
                await _campaign(client, args, out, since, until)
            elif args.stats_command == "top":
                await _top(client, args, out, since, until)
            else:
                await _overall(client, args, out, since, until)
        except AuthenticationError as exc:
            raise UsageError(refused(exc, creds.key_source)) from None
    return EXIT_OK


async def _campaign(
    client: WebPushClient, args: argparse.Namespace, out: Output, since: dt.date, until: dt.date
) -> None:
    metrics = await client.campaign_metrics(args.campaign_id, start_date=since, end_date=until)
    if args.plot is not None:  # first: a reader of stdout that goes away (| head) loses no chart
        title = f"campaign {args.campaign_id} · {metrics.name}"
        _plot(out, args.plot, title, interval(since, until), metrics)
    if args.json:
        out.echo(_dump(campaign_json(args.campaign_id, metrics)))
    else:
        show_campaign(out, args.campaign_id, metrics, since, until)


async def _top(
    client: WebPushClient, args: argparse.Namespace, out: Output, since: dt.date, until: dt.date
) -> None:
    metrics = await client.top_metrics(start_date=since, end_date=until)
    if args.plot is not None:
        _plot(out, args.plot, "every campaign of the account", interval(since, until), metrics)
    if args.json:
        out.echo(_dump(to_json(metrics)))
    else:
        show_top(out, metrics, since, until)


def _plot(
    out: Output, path: str, title: str, subtitle: str, metrics: CampaignMetrics | TopMetrics
) -> None:
    """The funnel of `metrics` with its drop and undelivered reasons, as a PNG at `path`."""
    from .funnel_plot import write_funnel

    o = metrics.overview

    def shown(reasons: tuple[Reason, ...]) -> list[Reason]:  # masked like all output
        return [attrs.evolve(r, label=out.redact(r.label)) for r in reasons]

    write_funnel(
        path,
        title=out.redact(title),  # a name from the server: masked and escaped, as printed
        subtitle=subtitle,
        funnel=o.funnel(),
        dropped=shown(metrics.dropped),
        undelivered=shown(metrics.undelivered),
        dropped_total=o.dropped,
        undelivered_total=o.undelivered,
    )
    _wrote(out, path)


async def _overall(
    client: WebPushClient, args: argparse.Namespace, out: Output, since: dt.date, until: dt.date
) -> None:
    limit: int | None = args.limit
    # A page larger than the limit would fetch campaigns only to drop them.
    per_page = args.per_page if limit is None else min(args.per_page, limit)
    rows: list[tuple[str, ...]] = []
    totals = FunnelTotals()
    dropped = undelivered = 0
    # Closed at once, not when it is collected, if the loop stops at --limit or on an error.
    campaigns = client.overall_metrics(start_date=since, end_date=until, per_page=per_page)
    async with contextlib.aclosing(campaigns):
        async for summary in campaigns:
            if args.json:  # JSON lines, as the pages come
                out.echo(_dump(to_json(summary)))
            else:
                rows.append(overall_row(summary))
            totals.add(summary)
            dropped += summary.dropped
            undelivered += summary.undelivered
            if limit is not None and totals.campaigns >= limit:
                break
    limited = limit is not None and totals.campaigns >= limit
    if not args.json:
        show_overall(out, rows, since, until, limited=limited)
    if args.plot is not None:
        from .funnel_plot import write_funnel

        first = " (the first, by --limit)" if limited else ""
        write_funnel(
            args.plot,
            title=f"{totals.campaigns} campaign(s){first}, summed",
            subtitle=interval(since, until),
            funnel=totals.funnel(),
            dropped=None,
            undelivered=None,
            dropped_total=dropped,
            undelivered_total=undelivered,
        )
        _wrote(out, args.plot)


def _wrote(out: Output, path: str) -> None:
    out.echo(f"funnel chart written to {path}", err=True)
