"""Send one push and print its campaign id.

Shows the smallest complete use of the SDK: a `WebPushClient` made from the environment,
used as an `async with` block (so its connections are closed), one `WebPush`, one `send`.

Run it against your Insider account (the key is Insider's Web Push API key; the partner
id is under InOne Settings > Account Settings)::

    export INSIDER_API_KEY=...  INSIDER_PARTNER_ID=...
    python examples/quickstart.py

or, with no account and no network, against the local fake (in another terminal)::

    insider-webpush fake-server --port 8080
    INSIDER_API_KEY=test INSIDER_PARTNER_ID=10000001 \\
        INSIDER_BASE_URL=http://127.0.0.1:8080 python examples/quickstart.py

It prints ``launched: campaign_id=...``, or the error and exits 1.
"""

from __future__ import annotations

import asyncio
import sys

from insider_webpush import InsiderError, WebPush, WebPushClient


async def main() -> int:
    push = WebPush(
        title="Spring sale",
        description="50% off everything until Sunday",
        image="https://example.com/icon.png",
        link="https://example.com/sale",
        ttl=3600,  # seconds
    )
    try:
        # INSIDER_API_KEY, INSIDER_PARTNER_ID and, optionally, INSIDER_BASE_URL.
        async with WebPushClient.from_env() as client:
            result = await client.send(push)
    except InsiderError as exc:
        # ambiguous: the push may have gone out although the call failed; don't resend blindly.
        print(f"failed: {exc} (may have gone out: {exc.ambiguous})", file=sys.stderr)
        return 1
    print(f"launched: campaign_id={result.campaign_id}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
