"""`Simulator`: Insider's Single Web Push API as a pure function of requests, no I/O.

It checks the API key and the body of every request (with the SDK's own models, so its limits are
the SDK's), keeps each operation's sliding-window quota, applies faults
([`Fault`][insider_webpush.testing.faults.Fault]) and records every request. It never touches a
socket, a clock or an event loop: the caller passes each request's arrival time and carries out the
[`Reply`][insider_webpush.testing.simulator.Reply] (wait `delay` seconds, then answer, or drop the
connection). [`FakeInsider`][insider_webpush.testing.server.FakeInsider] serves it over loopback
HTTP and behind the SDK's transport seam.

## What it enforces

- `POST /v1/single` creates a draft (body `partner_id`, `title`, optional `language`
  and `is_all`) and answers `201 {"success": true, "campaign_id": N}`. Titles of the drafts
  that exist must be unique: a duplicate is a `400`; deleting a draft frees its title.
- `POST /v2/single/{campaign_id}` and `POST /v1/single/{campaign_id}` launch a push and
  answer `200 {"success": true, "campaign_id": N}`. `{campaign_id}` is either a draft's id
  or the literal text `campaign_id` (as in Insider's samples), which gets a fresh id. Any
  other id is `424 {"message": "SERVICE:-Campaign not found"}`. A draft may be launched more
  than once; each launch is recorded, so a test can see a double launch.
- `DELETE /v1/single/{campaign_id}` (body `partner_id`) deletes a draft: `200`, or
  `424` when there is no such draft.
- Every request needs `Authorization: Bearer <api_key>` (else `401 {"message":
  "Unauthorized"}`) and a JSON body sent as `Content-Type: application/json`. A launch body is read
  with [`insider_webpush.push_from_dict`][insider_webpush.codec.push_from_dict], so any rule of
  [`WebPush`][insider_webpush.models.WebPush] that it breaks is a `400 {"message":
  "<field>: <reason>"}`; a `partner_id` that is missing or not the fake's own is a `400` too.
  Unknown paths are `404`, a known path with another method `405`.

The checks run in this order: route, key, quota, body, campaign id.

## Quota

Each operation has its own sliding window: launch v2 `rate_limit` per `rate_period` seconds, and
create, launch v1 and delete `v1_rate_limit` per `v1_rate_period` each. A request that arrives when
the last `rate_period` seconds (the half-open interval `(now - period, now]`) already hold
`rate_limit` *accepted* requests of its operation is answered `429 {"message": "Request limit
exceeded"}` with `Retry-After` set to the seconds until the oldest of them leaves the window,
rounded up to the millisecond (e.g. `"0.251"`). A request is *accepted* when it gets past the quota
check, whatever comes after it (a bad body or an unknown campaign still uses a slot, as at a gateway
that counts before the service looks at the body). `401` values, `429` values and faulted requests
that were not processed take no slot. `enforce_quota=False` turns the 429s off.
[`Simulator.max_in_window`][insider_webpush.testing.simulator.Simulator.max_in_window] counts every
arrival, rejected or not, so a test can check that a client never *sent* more than its quota.

## Records

`requests` holds a [`RecordedRequest`][insider_webpush.testing.records.RecordedRequest] for every
request in order of arrival (when its body was read), `launches` those launches that were carried
out. The `Authorization` header is stored as `Bearer <redacted>`. Byte-identical bodies share one
decoded object: treat `body` as read-only. A record with a distinct launch body costs about 0.6 KB,
so a run of 100,000 requests keeps about 60 MB.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from ..codec import draft_from_dict, partner_id_from_delete_body, push_from_dict
from ..endpoints import ENDPOINTS, LITERAL_CAMPAIGN_ID, Operation
from ..errors import ValidationError
from ..models import Draft
from . import _answers as answers
from ._answers import Answer
from ._memo import Memo, TextBody, decode, redact
from .faults import Fault
from .records import RecordedRequest, max_in_window

__all__ = ["DEFAULT_API_KEY", "DEFAULT_PARTNER_ID", "RecordedRequest", "Reply", "Simulator"]

logger = logging.getLogger("insider_webpush.testing")

DEFAULT_API_KEY: Final = "test"
"""The key the fake accepts unless told another: `FakeInsider()` and `fake-server`."""
DEFAULT_PARTNER_ID: Final = "10000001"
_FIRST_CAMPAIGN_ID: Final = 1001
_LAUNCHES: Final = frozenset({Operation.LAUNCH_V1, Operation.LAUNCH_V2})


@attrs.frozen
class Reply:
    """What to do with a request: wait `delay` seconds, then send `answer` (None: close
    the connection without an answer)."""

    answer: Answer | None
    delay: float = 0.0


class Simulator:
    """Insider's Single Web Push API without I/O; the module docs say what it enforces.

    Args:
        api_key (str): the key every request must carry as `Bearer`; default `"test"`
            ([`DEFAULT_API_KEY`][insider_webpush.testing.simulator.DEFAULT_API_KEY]).
        partner_id (str | int): the account's partner id; default `"10000001"`.
        rate_limit (int): launch v2 requests per `rate_period`; default 6000.
        rate_period (float): seconds of the launch v2 window; default 60.
        v1_rate_limit (int): create, launch v1 and delete requests (each) per
            `v1_rate_period`; default 30.
        v1_rate_period (float): seconds of their windows; default 60.
        faults (Sequence[Fault]): faults to inject, first match wins; default none. The
            `faults` attribute is a list that may be changed at any time.
        seed (int): seed of the random draws of faults with a `probability`; default 0.
        enforce_quota (bool): answer 429 over the quota; default True.

    Raises:
        ValidationError: an empty key, a bad partner id, or a limit or period out of range.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        partner_id: str = DEFAULT_PARTNER_ID,
        rate_limit: int = ENDPOINTS[Operation.LAUNCH_V2].rate_limit,
        rate_period: float = ENDPOINTS[Operation.LAUNCH_V2].rate_period,
        v1_rate_limit: int = ENDPOINTS[Operation.LAUNCH_V1].rate_limit,
        v1_rate_period: float = ENDPOINTS[Operation.LAUNCH_V1].rate_period,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        enforce_quota: bool = True,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValidationError("api_key", "must be a non-empty string")
        for name, limit, period in (
            ("rate", rate_limit, rate_period),
            ("v1_rate", v1_rate_limit, v1_rate_period),
        ):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValidationError(
                    f"{name}_limit", f"must be a whole number >= 1, got {limit!r}"
                )
            if not (isinstance(period, int | float) and math.isfinite(period) and period > 0):
                raise ValidationError(
                    f"{name}_period", f"must be a positive number, got {period!r}"
                )
        self._api_key = api_key
        self._authorization = f"Bearer {api_key}"
        # The model owns the partner id rule (an int becomes its string).
        self._partner_id = Draft(partner_id=partner_id, title="-").partner_id
        self._quota: dict[Operation, tuple[int, float]] = {
            op: (v1_rate_limit, float(v1_rate_period)) for op in Operation
        }
        self._quota[Operation.LAUNCH_V2] = (rate_limit, float(rate_period))
        self.faults: list[Fault] = list(faults)
        self.enforce_quota = enforce_quota
        self.requests: list[RecordedRequest] = []
        self.launches: list[RecordedRequest] = []
        self.drafts: dict[int, str] = {}
        """The drafts that exist: campaign id -> title."""
        self._rng = random.Random(seed)
        self._ids = itertools.count(_FIRST_CAMPAIGN_ID)
        self._arrivals = 0
        self._windows: dict[Operation, deque[float]] = {op: deque() for op in Operation}
        self._decode = Memo(decode)
        self._redact = Memo(redact)
        self._verdicts: Memo[bytes, Answer | None] = Memo(self._judge_push)

    # -- settings -------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The key the fake accepts (never in a record or a repr)."""
        return self._api_key

    @property
    def partner_id(self) -> str:
        """The account's partner id, as a string."""
        return self._partner_id

    @property
    def rate_limit(self) -> int:
        """Launch v2 requests accepted per `rate_period`."""
        return self._quota[Operation.LAUNCH_V2][0]

    @property
    def rate_period(self) -> float:
        """Seconds of the launch v2 window."""
        return self._quota[Operation.LAUNCH_V2][1]

    @property
    def v1_rate_limit(self) -> int:
        """Create, launch v1 and delete requests (each) accepted per `v1_rate_period`."""
        return self._quota[Operation.LAUNCH_V1][0]

    @property
    def v1_rate_period(self) -> float:
        """Seconds of the create, launch v1 and delete windows."""
        return self._quota[Operation.LAUNCH_V1][1]

    # -- one request ----------------------------------------------------------------------

    def receive(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes | None, now: float
    ) -> Reply:
        """Record one request, apply the faults, key, quota and contract, and say what to do.

        Args:
            method (str): the HTTP method, upper case.
            path (str): the URL path, e.g. `/v2/single/campaign_id`.
            headers (Mapping[str, str]): the request headers (names in any case).
            raw (bytes | None): the body; None when it was too large to read.
            now (float): the arrival time in seconds, on the clock of the quota's windows.

        Returns:
            Reply: the answer (None: drop the connection) and the seconds to wait first.
        """
        if not isinstance(headers, CIMultiDict | CIMultiDictProxy):
            headers = CIMultiDict(headers)
        index = self._arrivals
        self._arrivals += 1
        operation, segment, route_error = answers.route(method, path)
        body = self._decode(raw) if raw else None

        fault = self._fault_for(index, operation) if self.faults else None
        answer: Answer | None = None
        if fault is None or fault.processed or not fault.replaces_answer:
            answer = route_error
            if answer is None:
                answer = self._process(headers, operation, segment, raw, body, now)
        if fault is not None and fault.replaces_answer:
            status = None if fault.drop else fault.status
        else:
            assert answer is not None
            status = answer.status
        carried_out = answer is not None and answer.carried_out
        record = RecordedRequest(
            index,
            method,
            path,
            operation,
            body,
            now,
            status,
            self._redact(tuple(headers.items())),
            answer.campaign_id if answer is not None and carried_out else None,
        )
        self.requests.append(record)
        if carried_out and operation in _LAUNCHES:
            self.launches.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("#%d %s %s -> %s", index, method, path, status or "dropped")
        if fault is None:
            assert answer is not None
            return Reply(answer)
        if fault.drop:
            answer = None
        elif fault.status is not None:
            answer = answers.fault_answer(fault)
        return Reply(answer, fault.latency)

    def _process(
        self,
        headers: Mapping[str, str],
        operation: Operation | None,
        segment: str | None,
        raw: bytes | None,
        body: object,
        now: float,
    ) -> Answer:
        assert operation is not None
        if headers.get("Authorization") != self._authorization:
            return answers.UNAUTHORIZED
        if self.enforce_quota:
            wait = self._admit(operation, now)
            if wait is not None:
                retry_after = {"Retry-After": answers.retry_after(wait)}
                return answers.error(429, answers.QUOTA_MESSAGE, retry_after)
        if raw is None:
            return answers.TOO_LARGE
        if answers.content_type(headers) != answers.JSON:
            return answers.NOT_JSON_TYPE
        if isinstance(body, TextBody):
            return answers.NOT_JSON
        if operation is Operation.CREATE:
            return self._create(body)
        assert segment is not None
        if operation is Operation.DELETE:
            return self._delete(segment, body)
        return self._launch(operation, segment, raw)

    def _admit(self, operation: Operation, now: float) -> float | None:
        """None when the request takes a slot of its window, else the seconds until one frees."""
        limit, period = self._quota[operation]
        window = self._windows[operation]
        edge = now - period
        while window and window[0] <= edge:
            window.popleft()
        if len(window) >= limit:
            return window[len(window) - limit] + period - now
        window.append(now)
        return None

    def _launch(self, operation: Operation, segment: str, raw: bytes) -> Answer:
        verdict = self._verdicts(raw)
        if verdict is not None:
            return verdict
        if segment == LITERAL_CAMPAIGN_ID:
            campaign_id = next(self._ids)
        elif segment.isascii() and segment.isdigit() and int(segment) in self.drafts:
            campaign_id = int(segment)
        else:
            return answers.NO_CAMPAIGN
        return answers.success(operation, campaign_id)

    def _judge_push(self, raw: bytes) -> Answer | None:
        """None when the launch body `raw` is a valid push of this account, else its 400."""
        try:
            # push_from_dict checks that the body is an object itself.
            push = push_from_dict(cast(Mapping[str, Any], self._decode(raw)))
        except ValidationError as exc:
            return answers.error(400, str(exc))
        if push.partner_id is None:
            return answers.NO_PARTNER
        if push.partner_id != self._partner_id:
            return answers.OTHER_PARTNER
        return None

    def _create(self, body: object) -> Answer:
        try:
            draft = draft_from_dict(body)
        except ValidationError as exc:
            return answers.error(400, str(exc))
        if draft.partner_id != self._partner_id:
            return answers.OTHER_PARTNER
        if draft.title in self.drafts.values():
            return answers.DUPLICATE_TITLE
        campaign_id = next(self._ids)
        self.drafts[campaign_id] = draft.title
        return answers.success(Operation.CREATE, campaign_id)

    def _delete(self, segment: str, body: object) -> Answer:
        try:
            partner_id = partner_id_from_delete_body(body)
        except ValidationError as exc:
            return answers.error(400, str(exc))
        if partner_id != self._partner_id:
            return answers.OTHER_PARTNER
        if not (segment.isascii() and segment.isdigit() and int(segment) in self.drafts):
            return answers.NO_CAMPAIGN
        campaign_id = int(segment)
        del self.drafts[campaign_id]
        return answers.success(Operation.DELETE, campaign_id)

    def _fault_for(self, index: int, operation: Operation | None) -> Fault | None:
        for fault in self.faults:
            if fault.operation is not None and fault.operation is not operation:
                continue
            if fault.at is not None and index not in fault.at:
                continue
            if fault.probability > 0 and self._rng.random() >= fault.probability:
                continue
            return fault
        return None

    # -- what tests ask -------------------------------------------------------------------

    def max_in_window(
        self, period: float | None = None, *, operation: Operation | None = Operation.LAUNCH_V2
    ) -> int:
        """Most arrivals of `operation` in any half-open window of `period` seconds.

        Args:
            period (float | None): seconds; default None, that operation's quota period.
            operation (Operation | None): the operation counted; default
                `Operation.LAUNCH_V2`; None counts every request (then give `period`).

        Every arrival counts, including those answered 429, faulted or dropped.

        Raises:
            ValueError: `operation=None` without a `period`, or a period that is not > 0.
        """
        if period is None:
            if operation is None:
                raise ValueError("give period= when counting every operation")
            period = self._quota[operation][1]
        if not period > 0:
            raise ValueError(f"period must be positive, got {period!r}")
        times = [
            r.arrived_at for r in self.requests if operation is None or r.operation is operation
        ]
        times.sort()  # records are in arrival order already; tests may append their own
        return max_in_window(times, period)

    def count(self, status: int | None = None, *, operation: Operation | None = None) -> int:
        """How many requests were answered `status` for `operation`.

        Args:
            status (int | None): the HTTP status; default None, any (dropped ones included).
            operation (Operation | None): the operation; default None, any.
        """
        return sum(
            1
            for r in self.requests
            if (status is None or r.status == status)
            and (operation is None or r.operation is operation)
        )
