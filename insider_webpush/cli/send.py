"""``insider-webpush send``: launch one push and print its campaign id."""

from __future__ import annotations

import argparse

from ..client import WebPushClient
from ..errors import AuthenticationError
from ..models import Target, WebPush
from ._common import EXIT_OK, UsageError
from .credentials import PARTNER_VARIABLE, credentials
from .fatal import refused
from .output import Output


def push_from_args(args: argparse.Namespace) -> WebPush:
    """The push the options describe; a bad field raises ``ValidationError`` by name."""
    target = None
    if args.target_attribute is not None or args.target_values is not None:
        target = Target(args.target_attribute, args.target_values)
    return WebPush(
        title=args.title,
        description=args.description,
        image=args.image,
        link=args.link,
        ttl=args.ttl,
        banner=args.banner,
        include_unengaged=args.include_unengaged,
        language=args.language,
        target=target,
    )


async def run(args: argparse.Namespace, out: Output) -> int:
    push = push_from_args(args)  # a bad field stops here, before any connection
    creds = credentials(args)
    if creds.partner_id is None:
        raise UsageError(f"no partner id: set {PARTNER_VARIABLE} (or pass --partner-id)")
    if args.dedupe_key is not None and creds.redis_url is None and creds.dedupe_store is None:
        # Each run of the command is a new process: an in-memory store would remember nothing.
        raise UsageError(
            "--dedupe-key needs a store that outlives this command: --dedupe-store FILE (or "
            "INSIDER_DEDUPE_STORE), or --redis-url URL (or INSIDER_REDIS_URL)"
        )
    async with WebPushClient(creds.api_key, **creds.client_options()) as client:
        try:
            result = await client.send(
                push,
                campaign_id=args.campaign_id,
                api_version=args.api_version,
                dedupe_key=args.dedupe_key,
            )
        except AuthenticationError as exc:
            raise UsageError(refused(exc, creds.key_source)) from None
    out.echo(str(result.campaign_id))
    if result.replayed:
        out.echo(
            f"(already launched under dedupe key {args.dedupe_key!r}: nothing was sent)",
            err=True,
        )
    return EXIT_OK
