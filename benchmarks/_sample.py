"""The push every benchmark sends: a typical launch without a partner id of its own (the
client's fills it, as in most code)."""

from insider_webpush import WebPush

PUSH = WebPush(
    title="Flash sale",
    description="Everything 30% off until midnight",
    image="https://example.com/icon.png",
    link="https://example.com/sale",
    ttl=3600,
)
