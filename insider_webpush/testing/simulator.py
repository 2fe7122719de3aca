"""`Simulator`: Insider's Single Web Push API as a pure function of requests, no I/O.

It checks the API key and the body of every request (with the SDK's own models, so its limits are
the SDK's), keeps each quota group's sliding-window quota, applies faults
([`Fault`][insider_webpush.testing.faults.Fault]), records every request, and serves the web push
statistics of the launches it carried out. It never touches a socket, an event loop or a
monotonic clock: the caller passes each request's arrival time and carries out the
[`Reply`][insider_webpush.testing.simulator.Reply] (wait `delay` seconds, then answer, or drop the
connection). Its one wall-clock read is the UTC date of a launch, when `today` is not pinned
(see Statistics below). [`FakeInsider`][insider_webpush.testing.server.FakeInsider] serves it
over loopback HTTP and behind the SDK's transport seam.

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
- `POST /v1/statistics/campaign-metrics`, `POST /v1/statistics/overall-metrics` and
  `POST /v1/statistics/top-metrics` answer the web push statistics of the launches carried out
  (see Statistics below).
- Every request needs `Authorization: Bearer <api_key>` (else `401 {"message":
  "Unauthorized"}`; the statistics endpoints answer `401 {"status_code": 401}`, as in Insider's
  collection) and a JSON body sent as `Content-Type: application/json`. A launch body is read
  with [`insider_webpush.push_from_dict`][insider_webpush.codec.push_from_dict], so any rule of
  [`WebPush`][insider_webpush.models.WebPush] that it breaks is a `400 {"message":
  "<field>: <reason>"}`; a `partner_id` that is missing or not the fake's own is a `400` too
  (on a statistics endpoint a missing one is a 422, another account's a 400).
  Unknown paths are `404`, a known path with another method `405`.

The checks run in this order: route, key, quota, body, campaign id (statistics: route, key,
quota, JSON body, fields (422), partner id (400), campaign (422)).

## Quota

Each quota group of the endpoint table
([`Endpoint.quota`][insider_webpush.endpoints.Endpoint]) has its own sliding window: launch v2
`rate_limit` per `rate_period` seconds; create, launch v1 and delete `v1_rate_limit` per
`v1_rate_period` each; and the three statistics endpoints **one window together**,
`stats_rate_limit` per `stats_rate_period` (default 30 per 60 s: "30 requests per minute in
aggregate"). A request that arrives when the last period of its group (the half-open interval
`(now - period, now]`) already holds the limit of *accepted* requests of that group is
answered `429 {"message": "Request limit exceeded"}` (a statistics endpoint: **`403`**, with the
same body, Insider's throttle there) with `Retry-After` set to the seconds until the oldest of
them leaves the window, rounded up to the millisecond (e.g. `"0.251"`). A request is *accepted*
when it gets past the quota check, whatever comes after it (a bad body or an unknown campaign
still uses a slot, as at a gateway that counts before the service looks at the body). `401`
values, throttled (`429`/`403`) values and faulted requests that were not processed take no slot.
`enforce_quota=False` turns the throttling off.
[`Simulator.max_in_window`][insider_webpush.testing.simulator.Simulator.max_in_window] counts every
arrival of a quota group, rejected or not, so a test can check that a client never *sent* more
than its quota.

## Statistics

Each campaign id a launch was carried out under (`launches`) is one campaign, in the order of
its first launch: its name is that launch's title, its type `"Bulk"`, its status `"Active"`,
and its creation and launch date the fake's `today` when that launch was recorded (`today`
pinned, or else the UTC date read then: the fake's only wall-clock read). Its figures are
drawn from `random.Random(f"{seed}:{campaign_id}")`, the same in every answer and on every run:
targeted >= sent >= delivered >= clicks >= conversions, `dropped = targeted - sent`,
`undelivered = sent - delivered`, drop reasons (`frequencyCapped`, `silentHours`,
`unsubscriptions`, `serviceProviderErrors`, `internalErrors`) and undelivered reasons
(`offlineRecipients`, `other`) that add up to them, per-device figures (`Desktop`, `Mobile`)
that add up to sent, delivered, clicks and conversions, every click on the main element, and
revenue in `"USD"`. The answers are the models of
[`insider_webpush.metrics`][insider_webpush.metrics] written by
[`insider_webpush.codec.statistics`][insider_webpush.codec.statistics], so they are
formatted as Insider formats them: campaign and top metrics as text (`"411,840"`, `"34.08%"`;
their rates are rounded to what two decimals of a percentage show), overall metrics as numbers
(unrounded fractions).

- Campaign metrics answer for one `campaign_id`, whatever the interval.
- Top metrics add up the campaigns created within `[start_date, end_date]` (both included).
- Overall metrics list those campaigns in launch order, `per_page` (default 10, at most
  `stats_per_page_max`, default 20) a page from `page` (default 1), as
  `{"page", "per_page", "total", "data"}`; a page past the last has an empty `data`.

Body values may be strings (as Insider's samples send them) or, for `page`, `per_page` and
`campaign_id`, whole numbers. What is wrong is a `422 {"status_code": 422, "errors": {field:
[message]}}` naming every bad field, in Laravel's words as Insider's sample is:

- a field missing or empty (any field but `page` and `per_page`, which have defaults):
  `The start date field is required.`;
- `start_date` or `end_date` not `YYYY-MM-DD`, or no such day:
  `The end date does not match the format Y-m-d.`;
- `end_date` before `start_date`: `The end date must be a date after or equal to start date.`;
- `page`, `per_page` or `campaign_id` not a whole number: `The page must be an integer.`;
  below 1: `The per page must be at least 1.`;
- `per_page` above `stats_per_page_max`: `The per page may not be greater than 20.`;
- `campaign_id` not a campaign of the fake: `The selected campaign id is invalid.`;
- `start_date` before the campaign's creation date: `The Start Date cannot be earlier than the
  Campaign Create Date.` (the sentence of Insider's docs for `start_date`).

The last two are checked after the others and after the partner id.

## Records

`requests` holds a [`RecordedRequest`][insider_webpush.testing.records.RecordedRequest] for every
request in order of arrival (when its body was read), `launches` those launches that were carried
out. The `Authorization` header is stored as `Bearer <redacted>`. Byte-identical bodies share one
decoded object: treat `body` as read-only. A record with a distinct launch body costs about 0.6 KB,
so a run of 100,000 requests keeps about 60 MB; each campaign id launched adds about 0.13 KB
(its entry in `campaigns`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from ..codec import draft_from_dict, partner_id_from_delete_body, push_from_dict
from ..endpoints import ENDPOINTS, LITERAL_CAMPAIGN_ID, QUOTAS, STATISTICS, Operation
from ..errors import ValidationError
from ..models import Draft, WebPush
from . import _answers as answers
from . import _statistics as statistics
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
_LAUNCH_V2: Final = ENDPOINTS[Operation.LAUNCH_V2].quota
_V1: Final = ENDPOINTS[Operation.LAUNCH_V1].quota


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
        stats_rate_limit (int): statistics requests (the three endpoints together) per
            `stats_rate_period`; default 30.
        stats_rate_period (float): seconds of their shared window; default 60.
        stats_per_page_max (int): the largest `per_page` the overall metrics accept (more
            is a 422); default 20, as a public client reports of Insider.
        faults (Sequence[Fault]): faults to inject, first match wins; default none. The
            `faults` attribute is a list that may be changed at any time.
        seed (int): seed of the random draws of faults with a `probability`, and of every
            campaign's statistics; default 0.
        enforce_quota (bool): answer 429 (statistics: 403) over the quota; default True.
        today (datetime.date | None): the fake's date, the creation date of the campaigns
            launched while it holds; default None, the UTC date read at each new campaign's
            first launch (the fake's only wall-clock read). Settable later (`sim.today`).

    Raises:
        ValidationError: an empty key, a bad partner id, a limit or period out of range, or
            a `today` that is not a `datetime.date`.
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
        stats_rate_limit: int = QUOTAS[STATISTICS][0],
        stats_rate_period: float = QUOTAS[STATISTICS][1],
        stats_per_page_max: int = statistics.PER_PAGE_MAX,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        enforce_quota: bool = True,
        today: dt.date | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValidationError("api_key", "must be a non-empty string")
        if (
            isinstance(stats_per_page_max, bool)
            or not isinstance(stats_per_page_max, int)
            or stats_per_page_max < 1
        ):
            raise ValidationError(
                "stats_per_page_max", f"must be a whole number >= 1, got {stats_per_page_max!r}"
            )
        for name, limit, period in (
            ("rate", rate_limit, rate_period),
            ("v1_rate", v1_rate_limit, v1_rate_period),
            ("stats_rate", stats_rate_limit, stats_rate_period),
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
        # One window per quota group of the endpoint table: launch v2's, the statistics
        # endpoints' shared one, and the v1 limit for each other group (create, launch v1,
        # delete).
        self._quota: dict[str, tuple[int, float]] = {
            group: (v1_rate_limit, float(v1_rate_period)) for group in QUOTAS
        }
        self._quota[_LAUNCH_V2] = (rate_limit, float(rate_period))
        self._quota[STATISTICS] = (stats_rate_limit, float(stats_rate_period))
        self.today = today
        self.faults: list[Fault] = list(faults)
        self.enforce_quota = enforce_quota
        self.requests: list[RecordedRequest] = []
        self.launches: list[RecordedRequest] = []
        self.drafts: dict[int, str] = {}
        """The drafts that exist: campaign id -> title."""
        self._rng = random.Random(seed)
        self._ids = itertools.count(_FIRST_CAMPAIGN_ID)
        self._arrivals = 0
        self._windows: dict[str, deque[float]] = {group: deque() for group in self._quota}
        self._decode = Memo(decode)
        self._redact = Memo(redact)
        self._verdicts: Memo[bytes, WebPush | Answer] = Memo(self._judge_push)
        self._statistics = statistics.Statistics(
            seed, self._partner_id, self._date, stats_per_page_max
        )

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
        return self._quota[_LAUNCH_V2][0]

    @property
    def rate_period(self) -> float:
        """Seconds of the launch v2 window."""
        return self._quota[_LAUNCH_V2][1]

    @property
    def v1_rate_limit(self) -> int:
        """Create, launch v1 and delete requests (each) accepted per `v1_rate_period`."""
        return self._quota[_V1][0]

    @property
    def v1_rate_period(self) -> float:
        """Seconds of the create, launch v1 and delete windows."""
        return self._quota[_V1][1]

    @property
    def stats_rate_limit(self) -> int:
        """Statistics requests (the three endpoints together) accepted per
        `stats_rate_period`."""
        return self._quota[STATISTICS][0]

    @property
    def stats_rate_period(self) -> float:
        """Seconds of the statistics endpoints' shared window."""
        return self._quota[STATISTICS][1]

    @property
    def stats_per_page_max(self) -> int:
        """The largest `per_page` the overall metrics accept."""
        return self._statistics.per_page_max

    @property
    def today(self) -> dt.date | None:
        """The fake's date, given to each campaign at its first launch; None: the UTC date
        then. Set it to move the fake to another day (a `datetime.date`, not a `datetime`).

        Raises:
            ValidationError: (on setting) not a `datetime.date` or None.
        """
        return self._today

    @today.setter
    def today(self, value: dt.date | None) -> None:
        if value is not None and (isinstance(value, dt.datetime) or not isinstance(value, dt.date)):
            raise ValidationError(
                "today", f"must be a datetime.date or None, not {type(value).__name__}"
            )
        self._today = value

    def _date(self) -> dt.date:
        # The fake's only wall-clock read, and only when `today` is not pinned.
        return self._today if self._today is not None else dt.datetime.now(dt.UTC).date()

    @property
    def campaigns(self) -> Mapping[int, statistics.Campaign]:
        """The campaigns the statistics endpoints report: campaign id to its name, creation
        date and link, in the order of their first launch (read-only)."""
        return MappingProxyType(self._statistics.campaigns)

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
        reads = statistics.is_statistics(operation)
        if headers.get("Authorization") != self._authorization:
            return statistics.UNAUTHORIZED if reads else answers.UNAUTHORIZED
        if self.enforce_quota:
            wait = self._admit(operation, now)
            if wait is not None:
                if reads:
                    return statistics.throttled(wait)
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
        if reads:
            return self._statistics.answer(operation, body)
        assert segment is not None
        if operation is Operation.DELETE:
            return self._delete(segment, body)
        return self._launch(operation, segment, raw)

    def _admit(self, operation: Operation, now: float) -> float | None:
        """None when the request takes a slot of its group's window, else the seconds until one
        frees."""
        group = ENDPOINTS[operation].quota
        limit, period = self._quota[group]
        window = self._windows[group]
        edge = now - period
        while window and window[0] <= edge:
            window.popleft()
        if len(window) >= limit:
            return window[len(window) - limit] + period - now
        window.append(now)
        return None

    def _launch(self, operation: Operation, segment: str, raw: bytes) -> Answer:
        push = self._verdicts(raw)
        if isinstance(push, Answer):
            return push
        if segment == LITERAL_CAMPAIGN_ID:
            campaign_id = next(self._ids)
        elif segment.isascii() and segment.isdigit() and int(segment) in self.drafts:
            campaign_id = int(segment)
        else:
            return answers.NO_CAMPAIGN
        # Carried out: the launch is recorded in `launches` and its campaign has statistics.
        self._statistics.record_launch(campaign_id, push.title, push.link)
        return answers.success(operation, campaign_id)

    def _judge_push(self, raw: bytes) -> WebPush | Answer:
        """The push of the launch body `raw` when it is a valid push of this account, else its
        400."""
        try:
            # push_from_dict checks that the body is an object itself.
            push = push_from_dict(cast(Mapping[str, Any], self._decode(raw)))
        except ValidationError as exc:
            return answers.error(400, str(exc))
        if push.partner_id is None:
            return answers.NO_PARTNER
        if push.partner_id != self._partner_id:
            return answers.OTHER_PARTNER
        return push

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
        """Most arrivals of `operation`'s quota group in any half-open window of `period`
        seconds.

        The group is what one window of the quota counts: a statistics operation counts the
        three statistics endpoints together (they share one quota); every other operation is
        a group of its own, so it counts only itself.

        Args:
            period (float | None): seconds; default None, that group's quota period.
            operation (Operation | None): the operation whose group is counted; default
                `Operation.LAUNCH_V2`; None counts every request (then give `period`).

        Every arrival counts, including those answered 429 (or 403), faulted or dropped.

        Raises:
            ValueError: `operation=None` without a `period`, or a period that is not > 0.
        """
        if period is None:
            if operation is None:
                raise ValueError("give period= when counting every operation")
            period = self._quota[ENDPOINTS[operation].quota][1]
        if not period > 0:
            raise ValueError(f"period must be positive, got {period!r}")
        group = None if operation is None else ENDPOINTS[operation].quota
        times = [
            r.arrived_at
            for r in self.requests
            if group is None or (r.operation is not None and ENDPOINTS[r.operation].quota == group)
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
