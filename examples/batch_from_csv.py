"""Launch every push of a CSV file as one crash-safe batch, and print the counts.

Shows `read_pushes` (the push-file reader the `insider-webpush` command uses) feeding
`send_many` lazily, with a journal: kill it at any moment (Ctrl-C, `kill -9`, a crash) and
run the same command again; what was launched is not launched again, what certainly failed
is sent again, and a push that may have gone out is reported, not resent.

The CSV has a header of the launch body's field names (`title`, `description`, `image`,
`link`, `ttl`, and optionally `banner`, `language`, `include_unengage`, `partner_id`), plus
optional `campaign_id` (a draft to launch), `target_attribute` and `target_values` (values
separated by `|`). An empty cell is an absent field. For example::

    title,description,image,link,ttl,target_attribute,target_values
    Sale,50% off,https://example.com/i.png,https://example.com,3600,d_wp_browser,Chrome|Edg

Run it against your Insider account::

    export INSIDER_API_KEY=...  INSIDER_PARTNER_ID=...
    python examples/batch_from_csv.py pushes.csv [--journal pushes.journal.jsonl]

or against the local fake (``insider-webpush fake-server --port 8080`` in another terminal,
then ``INSIDER_API_KEY=test INSIDER_PARTNER_ID=10000001
INSIDER_BASE_URL=http://127.0.0.1:8080`` in front of the same command).

The journal defaults to the CSV's path with ``.journal.jsonl`` appended. It prints one line
per failed push and a last line of counts; exits 0 when every push was launched, 1 when one
failed, 2 when the file has a bad line (nothing after that line is sent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from insider_webpush import BatchInputError, InsiderError, WebPushClient
from insider_webpush.pushfile import PushFileError, read_pushes


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="the push file, or - for standard input")
    parser.add_argument("--journal", help="default: CSV.journal.jsonl")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    journal = args.journal or (
        "pushes.journal.jsonl" if args.csv == "-" else f"{args.csv}.journal.jsonl"
    )

    try:
        async with WebPushClient.from_env() as client:
            # read_pushes is lazy: the file is read as the workers need pushes, never whole.
            batch = await client.send_many(
                read_pushes(args.csv, format="csv"),
                concurrency=args.concurrency,
                journal=journal,
            )
    except BatchInputError as exc:  # a bad line, or no such file: all before it was sent
        cause = exc.__cause__
        where = f"line {cause.line}: " if isinstance(cause, PushFileError) and cause.line else ""
        print(f"bad push file: {where}{cause}", file=sys.stderr)
        if exc.result is not None:
            print(f"sent before it: {exc.result.counts}", file=sys.stderr)
        return 2
    except InsiderError as exc:  # e.g. INSIDER_API_KEY unset, a journal of another batch
        print(f"error: {exc}", file=sys.stderr)
        return 2

    for outcome in batch.failed:
        hint = "may have gone out, not resent" if outcome.ambiguous else "certainly not sent"
        print(f"push #{outcome.index}: {outcome.error} ({hint})")
    counts = batch.counts
    counts["from_journal"] = sum(o.from_journal for o in batch)  # skipped: done in a past run
    counts["resent"] = sum(o.resent_after is not None for o in batch)
    print(" ".join(f"{name}={number}" for name, number in counts.items()))
    return 0 if not batch.failed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
