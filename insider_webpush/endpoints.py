"""Each API operation as data: its method, path and the default quota of one API key.

| operation | method and path | success | quota per key |
|---|---|---|---|
| `CREATE` | `POST /v1/single` | 201 | 30 per minute |
| `LAUNCH_V1` | `POST /v1/single/{campaign_id}` | 200 | 30 per minute |
| `LAUNCH_V2` | `POST /v2/single/{campaign_id}` | 200 | 6000 per minute |
| `DELETE` | `DELETE /v1/single/{campaign_id}` | 200 | 30 per minute |

Launch v2's path and quota are those of Insider's "Launch Single Web Push (v2)" page ("its
rate limit is 6000 requests per minute"; Insider raises it on request); the others come from
Insider's v1 pages and Postman collection.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["DEFAULT_BASE_URL", "ENDPOINTS", "Endpoint", "Operation"]

DEFAULT_BASE_URL = "https://web-push.api.useinsider.com"
"""Insider's Web Push API host, the one in every sample of its docs."""
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
    )
}
"""Every operation's endpoint, with Insider's default quota per API key (see the table
above)."""
