"""insider-webpush: launch Insider One Single Web Push campaigns from asyncio code.

>>> from insider_webpush import WebPushClient, WebPush
"""

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .batch import (
    BatchError,
    BatchInputError,
    BatchResult,
    JournalError,
    JournalMismatchError,
    Launch,
    NotSentError,
    Outcome,
    PushItem,
)
from .client import WebPushClient
from .codec import push_from_dict, push_to_dict
from .endpoints import DEFAULT_BASE_URL, Operation
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    DedupeConflictError,
    FailedDependencyError,
    InsiderError,
    MissingExtraError,
    RateLimitError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
    ValidationError,
)
from .limiter import Limiter, SlidingWindowLimiter
from .metrics import CampaignMetrics, CampaignSummary, TopMetrics
from .models import Draft, LaunchResult, Target, Timeouts, WebPush
from .outcomes import Stage, Verdict
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .redis_limiter import RedisLimiter
    from .testing import FakeInsider, Fault, RecordedRequest

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchError",
    "BatchInputError",
    "BatchResult",
    "CampaignMetrics",
    "CampaignSummary",
    "DedupeConflictError",
    "Draft",
    "FailedDependencyError",
    "FakeInsider",
    "Fault",
    "InsiderError",
    "JournalError",
    "JournalMismatchError",
    "Launch",
    "LaunchResult",
    "Limiter",
    "MissingExtraError",
    "NotSentError",
    "Operation",
    "Outcome",
    "PushItem",
    "RateLimitError",
    "RecordedRequest",
    "RetryPolicy",
    "ServerError",
    "SlidingWindowLimiter",
    "Stage",
    "Target",
    "Timeouts",
    "TopMetrics",
    "TransportError",
    "UnprocessableEntityError",
    "ValidationError",
    "Verdict",
    "WebPush",
    "WebPushClient",
    "__version__",
    "push_from_dict",
    "push_to_dict",
]
if find_spec("redis") is not None:  # the `redis` extra; `import *` must work without it
    __all__ += ["RedisLimiter"]

_TESTING = frozenset({"FakeInsider", "Fault", "RecordedRequest"})


def __getattr__(name: str) -> Any:
    # RedisLimiter is imported on first use: without the `redis` extra, importing it names
    # the extra, and everything else works.
    if name == "RedisLimiter":
        from .redis_limiter import RedisLimiter

        return RedisLimiter
    # The testing names are imported on first use too: FakeInsider's server loads aiohttp.web,
    # which code that only sends has no use for.
    if name in _TESTING:
        from . import testing

        value = getattr(testing, name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
