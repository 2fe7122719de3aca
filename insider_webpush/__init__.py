"""insider-webpush: launch Insider One Single Web Push campaigns from asyncio code.

>>> from insider_webpush import WebPushClient, WebPush
"""

from ._version import __version__
from .client import WebPushClient
from .codec import push_from_dict, push_to_dict
from .endpoints import DEFAULT_BASE_URL, Operation
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    InsiderError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from .limiter import Limiter, SlidingWindowLimiter
from .models import Draft, LaunchResult, Target, WebPush
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "Draft",
    "FailedDependencyError",
    "InsiderError",
    "LaunchResult",
    "Limiter",
    "Operation",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "SlidingWindowLimiter",
    "Target",
    "TransportError",
    "ValidationError",
    "WebPush",
    "WebPushClient",
    "__version__",
    "push_from_dict",
    "push_to_dict",
]
