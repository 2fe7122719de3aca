"""The command line's grammar: commands, options, and errors that never repeat a value.

Global options (``--plain``, ``-v``) are accepted before or after the command. An argument
error names the option and the rule, never the value given: a mistyped ``--api-key`` must
not print the key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any, NoReturn

from .._version import __version__
from ..endpoints import DEFAULT_BASE_URL, QUOTAS, STATISTICS
from ..errors import ValidationError
from ..metrics import PER_PAGE_DEFAULT, PER_PAGE_MAX
from ..models import TTL_MAX_SECONDS
from ..testing import DEFAULT_API_KEY
from ..testing.faults import Fault
from ._common import DEMO_PARTNER, QUOTA, UsageError

FILE_FORMATS = (
    "FILE formats (insider_webpush.pushfile): JSONL has one JSON object a line with the API's "
    "field names (title, description, image, link, ttl; optionally banner, include_unengage "
    'or include_unengaged, language, partner_id, target as {"attribute": ..., "values": '
    "[...]}); blank lines are skipped. A JSON array holds the same objects. CSV has a header "
    "row of the same names; an empty cell is an absent field; target_attribute and "
    "target_values (values separated by |) make the target; include_unengage(d) takes "
    "true/false/yes/no/1/0. A record may also carry campaign_id, the draft to launch. "
    "Records without partner_id take the client's. The format comes from the content (and "
    "the name's suffix); UTF-8, with or without a BOM, LF or CRLF."
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors come back to ``main`` (as :class:`UsageError`) with
    every value taken out, instead of being printed (maybe with a key in them) and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(_without_values(message), self.format_usage())


def _without_values(message: str) -> str:
    """argparse's message with the values it quotes taken out."""
    if message.startswith("unrecognized arguments:"):
        words = message.partition(":")[2].split()
        options = sorted({w.partition("=")[0] for w in words if w.startswith("-")})
        others = len(words) - len(options)
        if not options:
            return f"{others} unrecognized argument(s), not shown; see --help"
        extra = f" and {others} other argument(s), not shown" if others else ""
        return f"unrecognized option(s): {', '.join(options)}{extra}; see --help"
    if "invalid choice: " in message:  # the choices are ours; the value given is not shown
        return re.sub(r"invalid choice: '[^']*'", "invalid choice", message).replace("'", "")
    # argparse's own messages that quote a value; ours (from the type functions) never do.
    message = re.sub(r"ignored explicit argument '[^']*'", "takes no value", message)
    return re.sub(r"invalid \S+ value: '[^']*'", "invalid value", message)


def build_parser() -> Parser:
    parser = Parser(
        prog="insider-webpush",
        description="Launch Insider One Single Web Push campaigns, read their statistics, "
        "validate push files, and run a local fake of the API.",
        epilog="Credentials come from --api-key/--partner-id/--base-url or INSIDER_API_KEY, "
        "INSIDER_PARTNER_ID, INSIDER_BASE_URL. Exit codes: 0 every push succeeded (or the "
        "statistics were shown); 1 a push failed, validate found a bad line, or a request "
        "failed; 2 bad usage or input (Insider's 422 included), or the key was refused (a "
        "401: nothing more is sent); 130 interrupted (Ctrl-C or SIGTERM).",
        allow_abbrev=False,  # so a mistyped --api-key is never read as another option
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # The connection options go before or after the command: given before it, the command's
    # parser (defaults SUPPRESS) keeps them.
    _add_connection_options(parser, default=None)
    connection = Parser(add_help=False, allow_abbrev=False)
    _add_connection_options(connection.add_argument_group("connection"), default=argparse.SUPPRESS)

    send = commands.add_parser(
        "send",
        parents=[connection],
        help="launch one push and print its campaign id",
        description="Launch one push and print its campaign id. A push that breaks a rule "
        "is refused before anything is sent (exit 2).",
        allow_abbrev=False,
    )
    send.add_argument("--title", required=True, help="at most 100 characters")
    send.add_argument("--description", required=True, help="at most 255 (30 with a banner)")
    send.add_argument("--image", required=True, help="the icon, an https:// URL")
    send.add_argument("--link", required=True, help="where a click goes, an http(s) URL")
    send.add_argument(
        "--ttl",
        type=ttl,
        required=True,
        help="time to live: seconds, or with m, h or d (60m, 1h); at most 240 h",
    )
    send.add_argument("--banner", help="a rich push's image, an https:// URL")
    send.add_argument("--language", help="e.g. en_US")
    send.add_argument(
        "--include-unengaged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also target unengaged tokens (Insider's default: no)",
    )
    send.add_argument("--target-attribute", help="e.g. d_wp_browser or c_tier")
    send.add_argument(
        "--target-value",
        dest="target_values",
        action="append",
        metavar="VALUE",
        help="a value of the target attribute; repeat for several",
    )
    send.add_argument(
        "--campaign-id", type=positive_int, help="launch this draft (see the SDK's create)"
    )
    send.add_argument("--api-version", choices=("v1", "v2"), default="v2")
    send.add_argument(
        "--dedupe-key",
        metavar="KEY",
        help="launch this push at most once under KEY (across every process sharing "
        "--dedupe-store): a key already launched prints its campaign id and sends nothing",
    )

    batch = commands.add_parser(
        "batch",
        parents=[connection],
        help="launch every push of a push file (JSONL, CSV or a JSON array)",
        description="Launch every push of FILE, at most --concurrency at a time, within the "
        "quota. A file is checked in full first: if any line is bad, nothing is sent. From "
        "stdin a bad line stops the batch there. With --journal an interrupted or crashed "
        "run resumes where it stopped and never launches a push twice. The first 401 (a "
        "refused key) stops the batch: no new request starts. Ctrl-C or SIGTERM stops taking "
        "new pushes and lets those already taken finish; a second one abandons them.",
        epilog=FILE_FORMATS + " Exit codes: 0 every push succeeded; 1 a push failed (the "
        "summary lists them); 2 bad input or usage, or the key was refused; 130 stopped by "
        "Ctrl-C or SIGTERM.",
        allow_abbrev=False,
    )
    _add_file_arguments(batch)
    batch.add_argument("--journal", metavar="PATH", help="write-ahead journal; rerun to resume")
    batch.add_argument(
        "--failed-out",
        metavar="FILE",
        help="write the pushes that failed for certain (not the ambiguous ones) to FILE, in "
        "the input's format and line order, ready to send again",
    )
    batch.add_argument("--concurrency", type=positive_int, default=64, help="default: 64")
    _add_quota_arguments(batch)
    batch.add_argument(
        "--retry-ambiguous",
        action="store_true",
        help="resend pushes the journal records as maybe sent (they may go out twice)",
    )
    batch.add_argument(
        "--progress-interval",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when not on a terminal (default: 5)",
    )
    batch.add_argument(
        "--stats",
        action="store_true",
        help="after the batch, print the campaign ids it launched (one a line, in the order "
        "they completed; those a journal or a dedupe key replayed included), for `stats "
        "campaign ID`",
    )
    batch.add_argument(
        "--campaign-ids-out",
        metavar="FILE",
        help="write the campaign ids the batch launched to FILE, one a line, as they come",
    )

    _add_stats_command(commands, connection)

    validate = commands.add_parser(
        "validate",
        help="check every line of a push file; send nothing",
        description="Check every line of FILE and report each bad one with its line number "
        "and reason. Sends nothing. Exit 1 if any line is bad.",
        epilog=FILE_FORMATS,
        allow_abbrev=False,
    )
    _add_file_arguments(validate)

    fake = commands.add_parser(
        "fake-server",
        help="run a local fake of the API until Ctrl-C",
        description="Run FakeInsider, a local fake of the Single Web Push API with the real "
        "quota and injectable faults, until Ctrl-C. It accepts the key in $INSIDER_API_KEY, "
        f"or {DEFAULT_API_KEY!r} when that is unset.",
        epilog="FAULT is WHAT[:PROBABILITY][@INDEX][,OPTION...]. WHAT is an HTTP status "
        "(429, 500, 503, ...), 'drop' (close the connection without an answer) or 'slow' "
        "(answer normally, late). PROBABILITY (0-1) picks requests at random; @INDEX picks "
        "the request with that index (0 is the first); with neither, every request. "
        "OPTIONs: latency=SECONDS (wait before answering), retry-after=SECONDS (a 429's "
        "header), processed (launch the push, then fail: an ambiguous failure), "
        "op=OPERATION (only create, launch_v1, launch_v2, delete, campaign_metrics, "
        "overall_metrics or top_metrics requests). "
        "Examples: --fault 503:0.02  --fault drop:0.01  --fault 429:0.05,retry-after=1  "
        "--fault 500@3,processed  --fault slow:0.1,latency=2",
        allow_abbrev=False,
    )
    fake.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    fake.add_argument("--port", type=_port, default=8080, help="default: 8080; 0 picks a free one")
    fake.add_argument("--partner-id", default=DEMO_PARTNER, help=f"default: {DEMO_PARTNER}")
    _add_quota_arguments(fake)
    fake.add_argument(
        "--fault",
        type=fault,
        action="append",
        default=[],
        metavar="FAULT",
        help="inject a fault; repeat for several, the first that matches applies (see below)",
    )
    fake.add_argument("--seed", type=_seed, default=0, help="seed of the random faults")

    demo = commands.add_parser(
        "demo",
        help="send pushes to an embedded fake at the real quota: no account, no network",
        description="Start an embedded FakeInsider on 127.0.0.1 and send --count pushes "
        "through the real client at the real default quota (6000 per minute: 1000 pushes "
        "take about 10 s), then show what the server saw.",
        allow_abbrev=False,
    )
    demo.add_argument("--count", type=positive_int, default=1000, help="default: 1000")
    demo.add_argument("--concurrency", type=positive_int, default=64, help="default: 64")
    demo.add_argument(
        "--progress-interval", type=positive_float, default=2.0, help=argparse.SUPPRESS
    )
    # For tests only: a scaled quota, so a demo runs in a fraction of a second.
    demo.add_argument(
        "--rate-limit", type=positive_int, default=QUOTA.rate_limit, help=argparse.SUPPRESS
    )
    demo.add_argument(
        "--rate-period", type=positive_float, default=QUOTA.rate_period, help=argparse.SUPPRESS
    )
    for command in commands.choices.values():
        _add_global_options(command, top=False)
    return parser


STATS_QUOTA = (
    "The three statistics endpoints share one quota, 30 requests a minute per key (other "
    "processes using the key count too; --redis-url shares it): a throttled request (Insider "
    "answers 403 or 429) waits and is retried, with a warning. overall makes one request a "
    "page of --per-page campaigns: 1,000 campaigns at 10 a page are 100 requests, more than "
    "3 minutes. DATE is YYYY-MM-DD; both days are included. Exit codes: 0 shown; 1 a request "
    "failed; 2 bad usage, a request Insider could not process (a 422: its field errors are "
    "shown), or the key was refused."
)


def _add_stats_command(commands: Any, connection: argparse.ArgumentParser) -> None:
    stats = commands.add_parser(
        "stats",
        help="campaign statistics: one campaign, the account, or every campaign",
        description="Read Insider's web push statistics: one campaign's delivery funnel and "
        "why messages were lost (campaign), the account's (top), or a row a campaign "
        "(overall). A table by default, --json for machines, --plot FILE.png for a chart.",
        epilog=STATS_QUOTA,
        allow_abbrev=False,
    )
    which = stats.add_subparsers(dest="stats_command", metavar="WHAT", required=True)
    campaign = which.add_parser(
        "campaign",
        parents=[connection],
        help="one campaign: its funnel, rates, and why messages were dropped or undelivered",
        description="One campaign's statistics: the funnel targeted -> sent -> delivered -> "
        "clicked -> converted, its rates and revenue, and why messages were dropped before "
        "sending or not delivered. --since may not be before the campaign was created "
        "(Insider answers 422).",
        epilog=STATS_QUOTA,
        allow_abbrev=False,
    )
    campaign.add_argument("campaign_id", metavar="ID", type=positive_int, help="the campaign's id")
    top = which.add_parser(
        "top",
        parents=[connection],
        help="the account: its funnel, each campaign type, and the reasons",
        description="The account's statistics over every campaign: the funnel, rates and "
        "revenue, figures for each type of campaign, and why messages were dropped or not "
        "delivered.",
        epilog=STATS_QUOTA,
        allow_abbrev=False,
    )
    overall = which.add_parser(
        "overall",
        parents=[connection],
        help="every campaign, a row each (one request a page)",
        description="Every campaign of the interval, a row each: id, name, sent, delivered, "
        "clicks, delivery rate, CTR. Pages are fetched as needed, each within the quota. "
        "--json writes JSON lines (one campaign a line, as the pages come); --plot draws the "
        "funnel summed over the listed campaigns (the overall metrics give no reasons).",
        epilog=STATS_QUOTA,
        allow_abbrev=False,
    )
    overall.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="at most N campaigns (no page is fetched past them); default: all",
    )
    overall.add_argument(
        "--per-page",
        type=per_page,
        default=PER_PAGE_DEFAULT,
        metavar="N",
        help=f"campaigns a request, 1 to {PER_PAGE_MAX} (default: {PER_PAGE_DEFAULT}; Insider "
        "is reported to answer 422 above about 20)",
    )
    for leaf in (campaign, top, overall):
        leaf.add_argument(
            "--since", type=date, required=True, metavar="DATE", help="the first day, YYYY-MM-DD"
        )
        leaf.add_argument(
            "--until",
            type=date,
            metavar="DATE",
            help="the last day, YYYY-MM-DD (default: today, the local date)",
        )
        leaf.add_argument(
            "--json",
            action="store_true",
            help="JSON for machines: the models' attributes by their Python names",
        )
        leaf.add_argument(
            "--plot",
            metavar="FILE.png",
            help="also draw the delivery funnel, with why messages were lost, to a PNG "
            "(needs matplotlib: pip install 'insider-webpush[bench]')",
        )
        leaf.add_argument(
            "--rate-limit",
            type=positive_int,
            default=QUOTAS[STATISTICS][0],
            metavar="N",
            help="statistics requests per period, the three endpoints together (default: "
            f"{QUOTAS[STATISTICS][0]})",
        )
        leaf.add_argument(
            "--rate-period",
            type=positive_float,
            default=QUOTAS[STATISTICS][1],
            metavar="SECONDS",
            help=f"the statistics quota's period (default: {QUOTAS[STATISTICS][1]:g})",
        )
        _add_global_options(leaf, top=False)


def _add_connection_options(group: Any, *, default: object) -> None:
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=default,
        help="the API key (default: $INSIDER_API_KEY; prefer the env)",
    )
    group.add_argument(
        "--partner-id",
        metavar="ID",
        default=default,
        help="your partner id (default: $INSIDER_PARTNER_ID)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=default,
        help=f"the API's address (default: $INSIDER_BASE_URL or {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        default=default,
        help="send through this proxy, http://[user:password@]host:port (default: "
        "$HTTPS_PROXY unless $NO_PROXY lists the API's host; the password is never shown)",
    )
    group.add_argument(
        "--redis-url",
        metavar="URL",
        default=default,
        help="share the key's quota (and dedupe keys) with every process and host using this "
        "Redis, redis://[:password@]host:port/db (default: $INSIDER_REDIS_URL; none: this "
        "process alone; the password is never shown)",
    )
    group.add_argument(
        "--dedupe-store",
        metavar="URL|PATH",
        default=default,
        help="where dedupe keys are recorded: a redis:// URL or an SQLite file (default: "
        "$INSIDER_DEDUPE_STORE, else --redis-url, else this process's memory)",
    )


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser they have defaults; on each command SUPPRESS, so that a command's
    # parser does not reset what was given before the command.
    default: object = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--plain",
        action="store_true",
        default=default,
        help="plain text output even when rich is installed",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log every request (the key is redacted)",
    )


def _add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a JSONL, CSV or JSON-array push file; - for stdin",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "jsonl", "csv", "json"),
        default="auto",
        help="default: by the content and the name's suffix",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="an input without pushes is not an error",
    )


def _add_quota_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate-limit",
        type=positive_int,
        default=QUOTA.rate_limit,
        help=f"launches per period (default: {QUOTA.rate_limit})",
    )
    parser.add_argument(
        "--rate-period",
        type=positive_float,
        default=QUOTA.rate_period,
        metavar="SECONDS",
        help=f"the quota's period (default: {QUOTA.rate_period:g})",
    )


def positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, at least 1")
    return int(text)


def per_page(text: str) -> int:
    """``--per-page``: a whole number from 1 to ``PER_PAGE_MAX``."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= PER_PAGE_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {PER_PAGE_MAX}")
    return int(text)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date(text: str) -> dt.date:
    """``--since``/``--until``: a ``YYYY-MM-DD`` day of the calendar."""
    try:
        if _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD (e.g. 2026-11-01)")


def _seed(text: str) -> int:
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise argparse.ArgumentTypeError("must be a whole number")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError("must be a port number, 0 to 65535 (0: a free one)")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds, more than 0") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds, more than 0")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def ttl(text: str) -> int:
    """``--ttl``: seconds, or a number with a unit: ``90``, ``90s``, ``30m``, ``6h``, ``2d``."""
    number, unit = (text[:-1], text[-1].lower()) if text[-1:].isalpha() else (text, "s")
    if not (number.isascii() and number.isdigit()) or unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            "must be a whole number of seconds, or of minutes, hours or days with m, h or d "
            f"(e.g. 3600, 60m, 1h); at most {TTL_MAX_SECONDS} s (240 h)"
        )
    return int(number) * _UNITS[unit]


def fault(spec: str) -> Fault:
    """``--fault`` text to a ``testing.Fault``: ``Fault.parse`` reads it (syntax in the epilog)."""
    try:
        return Fault.parse(spec)
    except ValidationError as exc:
        # Fault.parse quotes the part it could not read: an argument error repeats no value.
        reason = re.sub(r",? not '[^']*'", "", exc.message)
        raise argparse.ArgumentTypeError(f"{reason} (see fake-server --help)") from None
