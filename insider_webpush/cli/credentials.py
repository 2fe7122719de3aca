"""Where the key, the partner id and the base URL come from, and which values to mask.

The key comes from ``--api-key`` or ``INSIDER_API_KEY``; it is never printed: every value
the user may have given as a key is masked in all output (:mod:`.output`), and so is the
password of a proxy (``--proxy``, or ``HTTPS_PROXY`` and the like).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from ..endpoints import DEFAULT_BASE_URL
from ._common import UsageError

KEY_VARIABLE = "INSIDER_API_KEY"
PARTNER_VARIABLE = "INSIDER_PARTNER_ID"
URL_VARIABLE = "INSIDER_BASE_URL"
REDIS_VARIABLE = "INSIDER_REDIS_URL"
DEDUPE_VARIABLE = "INSIDER_DEDUPE_STORE"
_URL_FLAGS = ("--proxy", "--redis-url", "--dedupe-store")  # URLs that may hold a password
_KEY_FLAG = "--api-key"


@attrs.frozen
class Credentials:
    api_key: str = attrs.field(repr=False)
    partner_id: str | None
    base_url: str
    key_source: str  # what to check when the key is refused: the flag or the variable
    proxy: str | None = attrs.field(default=None, repr=False)  # None: the environment's
    redis_url: str | None = attrs.field(default=None, repr=False)
    dedupe_store: str | None = attrs.field(default=None, repr=False)

    def client_options(self) -> dict[str, Any]:
        """The `WebPushClient` arguments every command shares."""
        return {
            "partner_id": self.partner_id,
            "base_url": self.base_url,
            "proxy": self.proxy,
            "redis_url": self.redis_url,
            "dedupe_store": self.dedupe_store,
        }


def credentials(args: argparse.Namespace) -> Credentials:
    """The connection settings of ``args``, then the environment, then the defaults.

    Raises:
        UsageError: no key anywhere.
    """
    api_key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not api_key:
        raise UsageError(f"no API key: set {KEY_VARIABLE} (or pass {_KEY_FLAG})")
    return Credentials(
        api_key=api_key,
        partner_id=args.partner_id or os.environ.get(PARTNER_VARIABLE) or None,
        base_url=args.base_url or os.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL,
        key_source=_KEY_FLAG if args.api_key else KEY_VARIABLE,
        proxy=getattr(args, "proxy", None) or None,
        redis_url=getattr(args, "redis_url", None) or os.environ.get(REDIS_VARIABLE) or None,
        dedupe_store=getattr(args, "dedupe_store", None) or os.environ.get(DEDUPE_VARIABLE) or None,
    )


def secrets_in(argv: Sequence[str]) -> list[str]:
    """Every value the user may have given as a key, to be masked in anything printed.

    Mistyped flags count too (``--apikey``, ``--api_key``, ``--api-kee=``...): any option
    whose name looks like "api key", and the value that follows it.
    """
    found = [os.environ.get(KEY_VARIABLE, "")]
    proxies = [v for k, v in os.environ.items() if k.lower().endswith("_proxy")]
    proxies += [os.environ.get(REDIS_VARIABLE, ""), os.environ.get(DEDUPE_VARIABLE, "")]
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, equals, value = arg.partition("=")
        if name in _URL_FLAGS:
            proxies.append(value if equals else argv[i + 1] if i + 1 < len(argv) else "")
            continue
        if not _looks_like_key_flag(name):
            continue
        if equals:
            found.append(value)
        elif i + 1 < len(argv):
            found.append(argv[i + 1])
    return found + [secret for url in proxies for secret in _proxy_password(url)]


def _proxy_password(url: str) -> list[str]:
    """A proxy URL's password, as written and decoded (the rest of the URL may be shown)."""
    try:
        password = urlsplit(url if "://" in url else f"http://{url}").password
    except ValueError:
        # Unreadable: mask whatever sits between the scheme and the host.
        return [url.partition("://")[2].rpartition("@")[0]] if "@" in url else []
    return [password, unquote(password)] if password else []


def _looks_like_key_flag(name: str) -> bool:
    if name == "--dedupe-key":  # a name for a launch, shown as given: not a secret
        return False
    letters = "".join(c for c in name.lower() if c.isalpha())
    return letters.startswith(("api", "key", "apik", "token", "secret")) or "key" in letters
