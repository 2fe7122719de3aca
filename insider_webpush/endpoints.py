"""Each API operation as data: its method, path and the default quota of one API key."""

from __future__ import annotations

import enum

import attrs

__all__ = ["DEFAULT_BASE_URL", "ENDPOINTS", "Endpoint", "Operation"]

DEFAULT_BASE_URL = "https://web-push.api.useinsider.com"
# The seed's samples post to the literal path segment when no draft id is at hand.
LITERAL_CAMPAIGN_ID = "campaign_id"


class Operation(enum.Enum):
    """The operations of the Single Web Push API; each has its own quota."""

    CREATE = "create"
    LAUNCH_V1 = "launch_v1"
    LAUNCH_V2 = "launch_v2"
    DELETE = "delete"


@attrs.frozen
class Endpoint:
    """One operation: its method, path, success status and default quota per API key.

    ``idempotent`` operations change nothing (reads), so the outcome table lets them be
    resent where a launch would be ambiguous. None of the Single Web Push operations is.
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
    """The quota group: operations that share one limiter per key have the same one."""

    def path_for(self, campaign_id: int | None = None) -> str:
        """The path, with ``campaign_id`` (already checked: a positive int) in it."""
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
