"""Each API operation as data: its method, path and the default quota of one API key.

| operation | method and path | success | quota per key |
|---|---|---|---|
| `CREATE` | `POST /v1/single` | 201 | 30 per minute |
| `LAUNCH_V1` | `POST /v1/single/{campaign_id}` | 200 | 30 per minute |
| `LAUNCH_V2` | `POST /v2/single/{campaign_id}` | 200 | 6000 per minute |
| `DELETE` | `DELETE /v1/single/{campaign_id}` | 200 | 30 per minute |
| `CAMPAIGN_METRICS` | `POST /v1/statistics/campaign-metrics` | 200 | 30 per minute, shared |
| `OVERALL_METRICS` | `POST /v1/statistics/overall-metrics` | 200 | (the same 30) |
| `TOP_METRICS` | `POST /v1/statistics/top-metrics` | 200 | (the same 30) |

Launch v2's path and quota are those of Insider's "Launch Single Web Push (v2)" page ("its
rate limit is 6000 requests per minute"; Insider raises it on request); the others come from
Insider's v1 pages and Postman collection. The three statistics endpoints share one quota
group, `statistics` ("You can make 30 requests per minute in aggregate"), are reads (they
change nothing, so the outcome table lets any failure be retried), and throttle with `403`
("Request limit exceeded") as well as `429`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from .outcomes import RETRY_SAFE_STATUSES

__all__ = ["DEFAULT_BASE_URL", "ENDPOINTS", "QUOTAS", "Endpoint", "Operation"]

DEFAULT_BASE_URL = "https://web-push.api.useinsider.com"
"""Insider's Web Push API host, the one in every sample of its docs."""
STATISTICS = "statistics"
"""The quota group of the three statistics endpoints."""
LITERAL_CAMPAIGN_ID = "campaign_id"
"""The path segment sent when no draft id is given: Insider's own samples post to the literal
path `/v2/single/campaign_id`."""


class Operation(enum.Enum):
    """The operations of the Single Web Push API; each has its own quota."""

    CREATE = "create"
    """Create a draft campaign: `POST /v1/single`, 30 per minute."""
    LAUNCH_V1 = "launch_v1"
    """Launch through v1: `POST /v1/single/{campaign_id}`, 30 per minute."""
    LAUNCH_V2 = "launch_v2"
    """Launch through v2: `POST /v2/single/{campaign_id}`, 6000 per minute."""
    DELETE = "delete"
    """Delete a draft campaign: `DELETE /v1/single/{campaign_id}`, 30 per minute."""
    CAMPAIGN_METRICS = "campaign_metrics"
    """One campaign's statistics: `POST /v1/statistics/campaign-metrics`."""
    OVERALL_METRICS = "overall_metrics"
    """Every campaign's statistics, by page: `POST /v1/statistics/overall-metrics`."""
    TOP_METRICS = "top_metrics"
    """The account's statistics: `POST /v1/statistics/top-metrics`."""


@attrs.frozen
class Endpoint:
    """One operation: its method, path, success status and default quota per API key.

    Attributes:
        operation: Which operation this is.
        method: The HTTP method, e.g. `"POST"`.
        path: The path, a template with `{campaign_id}` where the id goes.
        success_status: The status Insider answers a success with (201 for a create, 200
            otherwise).
        rate_limit: Requests per `rate_period` per API key.
        rate_period: The quota's period, in seconds (default 60).
        idempotent: The operation changes nothing (a read), so the outcome table lets it be
            resent where a launch would be ambiguous. None of the Single Web Push
            operations is (default False).
        quota: The quota group: operations that share one limiter per key have the same
            one; the operation's value by default.
        throttle_statuses: The statuses that say the quota was exceeded: a retry-safe pause
            of every sender of the group (default `{429}`; the statistics endpoints also
            answer `403`).
    """

    operation: Operation
    method: str
    path: str  # a template with {campaign_id} where the id goes
    success_status: int
    rate_limit: int  # requests per rate_period per API key
    rate_period: float = 60.0
    idempotent: bool = False
    quota: str = attrs.field(
        default=attrs.Factory(lambda self: self.operation.value, takes_self=True)
    )
    throttle_statuses: frozenset[int] = RETRY_SAFE_STATUSES

    def path_for(self, campaign_id: int | None = None) -> str:
        """The path of a request.

        Args:
            campaign_id: The draft's id, already checked to be a positive `int`; None puts
                the literal [`LITERAL_CAMPAIGN_ID`][insider_webpush.endpoints.LITERAL_CAMPAIGN_ID]
                in its place.

        Returns:
            The path, e.g. `/v2/single/25696`.
        """
        if "{campaign_id}" not in self.path:
            return self.path
        return self.path.format(
            campaign_id=LITERAL_CAMPAIGN_ID if campaign_id is None else int(campaign_id)
        )


ENDPOINTS: dict[Operation, Endpoint] = {
    e.operation: e
    for e in (
        Endpoint(Operation.CREATE, "POST", "/v1/single", 201, rate_limit=30),
        Endpoint(Operation.LAUNCH_V1, "POST", "/v1/single/{campaign_id}", 200, rate_limit=30),
        Endpoint(Operation.LAUNCH_V2, "POST", "/v2/single/{campaign_id}", 200, rate_limit=6000),
        Endpoint(Operation.DELETE, "DELETE", "/v1/single/{campaign_id}", 200, rate_limit=30),
        *(
            Endpoint(
                operation,
                "POST",
                f"/v1/statistics/{operation.value.replace('_', '-')}",
                200,
                rate_limit=30,
                idempotent=True,
                quota=STATISTICS,
                throttle_statuses=frozenset({403, 429}),
            )
            for operation in (
                Operation.CAMPAIGN_METRICS,
                Operation.OVERALL_METRICS,
                Operation.TOP_METRICS,
            )
        ),
    )
}
"""Every operation's endpoint, with Insider's default quota per API key (see the table
above)."""


def _quotas(endpoints: Mapping[Operation, Endpoint]) -> dict[str, tuple[int, float]]:
    quotas: dict[str, tuple[int, float]] = {}
    for e in endpoints.values():
        quota = quotas.setdefault(e.quota, (e.rate_limit, e.rate_period))
        if quota != (e.rate_limit, e.rate_period):  # a group is one limiter: one quota
            raise ValueError(f"quota group {e.quota!r} has two quotas: {quota} and {e}")
    return quotas


QUOTAS: Mapping[str, tuple[int, float]] = _quotas(ENDPOINTS)
"""Each quota group's default `(rate_limit, rate_period)` per API key: `launch_v2`
(6000, 60.0), `launch_v1`, `create` and `delete` (30, 60.0) each, and `statistics` (30, 60.0)
shared by the three statistics endpoints. `WebPushClient(quotas=...)` overrides them by
group."""
