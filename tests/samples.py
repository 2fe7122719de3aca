"""The seed page's sample launches, as pushes and as the exact wire bodies they must become."""

from __future__ import annotations

from typing import Any

from insider_webpush import Target, WebPush
from insider_webpush.codec import INCLUDE_UNENGAGED_WIRE_KEY

IMAGE = "https://image.useinsider.com/mywebsite/webPushDefaultImage/icon.jpeg"
BANNER = "https://image.useinsider.com/mywebsite/webPushDefaultImage/banner.jpeg"
LINK = "https://image.useinsider.com"

MINIMAL_FIELDS: dict[str, Any] = {
    "title": "title of push",
    "description": "description of push",
    "image": IMAGE,
    "link": LINK,
    "ttl": 1000,
}
MINIMAL_WIRE: dict[str, Any] = {**MINIMAL_FIELDS, "ttl": "1000"}


def full_push(partner_id: str) -> WebPush:
    """The seed's second sample: a rich, segmented push."""
    return WebPush(
        **MINIMAL_FIELDS,
        banner=BANNER,
        include_unengaged=True,
        language="en_US",
        target=Target("d_wp_browser", ["Edg"]),
        partner_id=partner_id,
    )


def full_wire(partner_id: str) -> dict[str, Any]:
    """What ``full_push`` goes out as, with the include-unengaged spelling the codec chose."""
    return {
        **MINIMAL_WIRE,
        "partner_id": partner_id,
        "banner": BANNER,
        INCLUDE_UNENGAGED_WIRE_KEY: True,
        "language": "en_US",
        "target": {"attribute": "d_wp_browser", "values": ["Edg"]},
    }
