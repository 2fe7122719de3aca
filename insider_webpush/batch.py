"""Send many pushes: a fixed pool of workers, one outcome per push, a write-ahead journal.

The batch composes a [`Sender`][insider_webpush.sender.Sender] (`WebPushClient` is one): it
prepares each launch once, so the journal hashes exactly the bytes that are sent.
`concurrency` workers (no more than the input's length when it has one) pull the input
lazily, one item at a time, so memory does not grow with the number of pushes (no task
per push, no list of the input). Every input item gets exactly one
[`Outcome`][insider_webpush.batch.Outcome]; a failed push, or an item that is not a push, is
an outcome, never an exception. When the input itself raises, the batch finishes what is in
flight, reports every outcome, and raises
[`BatchInputError`][insider_webpush.batch.BatchInputError].

Use it through [`WebPushClient.send_many`][insider_webpush.client.WebPushClient.send_many]
and [`WebPushClient.stream`][insider_webpush.client.WebPushClient.stream].

The journal is a JSONL file. Its first line names the format; then, per push:

```json
{"event":"sending","index":7,"hash":"<16 hex>","attempt":1}
{"event":"done","index":7,"hash":"<16 hex>","attempts":1,"ok":true,"status":null,
 "campaign_id":1697300275,"ambiguous":false}
```

A `sending` line is appended and flushed once the attempt's quota grant is taken and its
connection is ready, immediately before its first byte is written; the `done` line is appended
when the push ends and flushed with the next `sending` line or at the end of the event-loop
iteration, before the push's outcome reaches the caller (a failure adds `error`, `message`,
`retry_after` and, for a transport error, `stage`; `status` is the HTTP status of a failure,
null for a success or a transport error). `hash` is the first 64 bits of SHA-256 over the
method, path and body bytes that are sent. A push that failed before any attempt (a
`ValidationError`) writes nothing: it is checked again on a rerun.

Rerunning the same input with the same journal: a push with a `done` line is not sent and
its outcome comes back from the journal (`from_journal=True`, typed error rebuilt) when it
succeeded; a push whose journaled failure was certain (nothing can have gone out: a 400, a
401, a refused connection...) is sent again; a push with a `sending` line and no `done`
one may have gone out, so it comes back ambiguous and is not sent; ambiguous pushes of
either kind are sent again only with `retry_ambiguous=True`; any other push is sent. A
push that no longer hashes as journaled raises
[`JournalMismatchError`][insider_webpush.batch.JournalMismatchError] once what is in
flight has finished: nothing after it is pulled, so an inserted or removed push cannot shift
the batch into launching twice.

A journal serves one batch at a time (an exclusive `flock`; not on Windows). A last line
torn by a crash is dropped; a damaged line elsewhere raises
[`JournalError`][insider_webpush.batch.JournalError]. Resuming keeps ~21 bytes per journaled
push in memory. A flush hands the lines to the operating system, which keeps them when the
process is killed (SIGKILL, the OOM killer, a crash); a process killed between a `done` line
and its flush (the same loop iteration) loses that line, and a rerun reports the push
ambiguous rather than sending it again. Surviving power loss or a kernel crash would need an
fsync per line (milliseconds each, on the event loop), which is not offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from typing import Any, Final, Self, overload

import attrs

from . import telemetry
from .errors import (
    AuthenticationError,
    DedupeConflictError,
    InsiderError,
    JournalError,
    JournalMismatchError,
    TransportError,
    ValidationError,
)
from .ledger import Action, Claim, Entry, FileJournal, Journal, Ledger, Taken
from .models import (
    LaunchResult,
    WebPush,
    check_campaign_id,
    check_concurrency,
    check_dedupe_key,
)
from .sender import PreparedLaunch, Sender

# send_many / stream are reached through WebPushClient's methods of the same names.
__all__ = [
    "BatchError",
    "BatchInputError",
    "BatchResult",
    "JournalError",
    "JournalMismatchError",
    "Launch",
    "NotSentError",
    "Outcome",
    "PushItem",
]

DEFAULT_CONCURRENCY = 64
"""Workers of a batch when `concurrency` is not given."""
# The JSONL journal is held by one run (flock), so its `sending` lines are never in flight;
# a journal in a shared store may be held by a run on another host for this long per attempt.
_JOURNAL_LEASE: Final = 300.0

# -- the items ------------------------------------------------------------------------------


@attrs.frozen
class Launch:
    """One batch item with the options of `WebPushClient.send`.

    `send_many([Launch(push, dedupe_key="order-4711:welcome"), ...])`. Checked when made.

    Attributes:
        push: The push.
        campaign_id: The draft to launch, a positive `int`, or None (the default) for the
            literal path.
        dedupe_key: Launch this push at most once across every process sharing the client's
            dedupe store (see `WebPushClient.send`); None (the default): no dedupe key.

    Raises:
        ValidationError: A field breaks its rule.
    """

    push: WebPush = attrs.field()
    campaign_id: int | None = attrs.field(default=None)
    dedupe_key: str | None = attrs.field(default=None)

    @push.validator
    def _check_push(self, _: object, value: object) -> None:
        if not isinstance(value, WebPush):
            raise ValidationError("push", f"must be a WebPush, not {type(value).__name__}")

    @campaign_id.validator
    def _check_campaign_id(self, _: object, value: object) -> None:
        check_campaign_id(value)

    @dedupe_key.validator
    def _check_dedupe_key(self, _: object, value: object) -> None:
        if value is not None:
            check_dedupe_key(value)


PushItem = WebPush | tuple[int | None, WebPush] | Launch
"""One input of a batch: a push, a `(campaign_id, push)` pair to launch a draft, or a
[`Launch`][insider_webpush.batch.Launch] (a push with a draft id and a dedupe key)."""

Pushes = Iterable[PushItem] | AsyncIterable[PushItem]
"""The input of a batch: an iterable or async iterable of
[`PushItem`][insider_webpush.batch.PushItem], pulled lazily."""


# -- results --------------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """What became of one push of a batch. Exactly one of `result` and `error` is set.

    Attributes:
        index: The item's position in the input, from 0.
        push: The push, or None when the item was not a push (`error` is then a
            `ValidationError`).
        campaign_id: The draft it was launched to, or None for the literal path.
        result: Insider's answer, when the launch succeeded.
        error: Why it failed, typed (an [`InsiderError`][insider_webpush.errors.InsiderError]).
        attempts: The attempts that went on the wire, over every run of a journal.
        from_journal: True when this run did not send the push and the outcome was read from
            the journal.
        resent_after: The failure a journal recorded for this push in an earlier run, when
            this run sent it again: a certain failure (nothing of it can have gone out), or
            an ambiguous one under `retry_ambiguous=True`. None otherwise.
    """

    index: int
    push: WebPush | None
    campaign_id: int | None = None
    result: LaunchResult | None = None
    error: InsiderError | None = None
    attempts: int = 0
    from_journal: bool = False
    resent_after: InsiderError | None = None

    @property
    def ok(self) -> bool:
        """Insider confirmed the launch."""
        return self.result is not None

    @property
    def ambiguous(self) -> bool:
        """The push failed here but may have gone out. Never resent, except by a rerun
        with the journal and `retry_ambiguous=True`."""
        return self.error is not None and self.error.ambiguous


class BatchError(InsiderError):
    """Raised by `BatchResult.raise_for_failures` when some push failed.

    Its text counts the failures and the ambiguous ones and names the first.

    Args:
        failed: The failed outcomes, at least one.
        total: The number of pushes in the batch.

    Attributes:
        failed: The failed outcomes, as a tuple.
        total: As given.
        ambiguous: True when any failed push may have gone out.
    """

    def __init__(self, failed: Sequence[Outcome], total: int) -> None:
        self.failed = tuple(failed)
        self.total = total
        self.ambiguous = any(o.ambiguous for o in self.failed)
        n_ambiguous = sum(o.ambiguous for o in self.failed)
        first = self.failed[0]
        super().__init__(
            f"{len(self.failed)} of {total} pushes failed ({n_ambiguous} ambiguous: they may "
            f"have gone out); first: push #{first.index}: {first.error!r}"
        )


class BatchInputError(InsiderError):
    """The input of a batch raised while it was read; `__cause__` is its exception.

    Every item read before it got its outcome.

    Args:
        index: The position the input failed at.
        error: The input's exception.

    Attributes:
        index: As given.
        result: The outcomes of every item read before it: a
            [`BatchResult`][insider_webpush.batch.BatchResult] from `send_many`; None from
            `stream`, which yielded them.
    """

    def __init__(self, index: int, error: BaseException) -> None:
        self.index = index
        self.result: BatchResult | None = None
        super().__init__(
            f"the input failed at item #{index}: {type(error).__name__}: {error}; the "
            f"{index} item(s) before it were processed and reported"
        )


class NotSentError(InsiderError):
    """A push of a batch was not sent because the batch stopped before it went out.

    Two things stop a batch. A 401: the key itself was refused, so every other push would be
    refused too; after the first one no new request starts and every push not yet on the
    wire gets this error, with `cause` that 401. Or the `stop` event given to `send_many` /
    `stream` (e.g. on SIGTERM): no new request starts, the pushes already on the wire finish,
    and the ones pulled but not yet on the wire get this error. Either way it is a certain
    failure: nothing of the push went out, and a rerun with the journal sends it.

    Args:
        message: What stopped the batch.
        cause: The [`AuthenticationError`][insider_webpush.errors.AuthenticationError] that
            stopped it, or None when it was stopped from outside.
        index: The position of the push that got that 401, or None.

    Attributes:
        message: As given.
        cause: As given.
        index: As given.
    """

    def __init__(
        self, message: str, *, cause: InsiderError | None = None, index: int | None = None
    ) -> None:
        self.message = message
        self.cause = cause
        self.index = index
        super().__init__(message)


class BatchResult(Sequence[Outcome]):
    """The outcomes of `WebPushClient.send_many`, in input order (`result[i]` is the outcome
    of the i-th push), with the successes and failures picked out.

    A read-only sequence of [`Outcome`][insider_webpush.batch.Outcome].

    Args:
        outcomes: The outcomes, in input order.

    Attributes:
        succeeded: The outcomes whose launch Insider confirmed.
        failed: The others, the ambiguous ones included.
    """

    __slots__ = ("_outcomes", "failed", "succeeded")

    def __init__(self, outcomes: Iterable[Outcome]) -> None:
        self._outcomes = tuple(outcomes)
        self.succeeded: tuple[Outcome, ...] = tuple(o for o in self._outcomes if o.ok)
        self.failed: tuple[Outcome, ...] = tuple(o for o in self._outcomes if not o.ok)

    @overload
    def __getitem__(self, index: int) -> Outcome: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Outcome, ...]: ...

    def __getitem__(self, index: int | slice) -> Outcome | tuple[Outcome, ...]:
        return self._outcomes[index]

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def ambiguous(self) -> tuple[Outcome, ...]:
        """The failed pushes that may have gone out anyway."""
        return tuple(o for o in self.failed if o.ambiguous)

    @property
    def counts(self) -> dict[str, int]:
        """`{"total", "succeeded", "failed", "ambiguous"}`; ambiguous ones count as failed."""
        return {
            "total": len(self._outcomes),
            "succeeded": len(self.succeeded),
            "failed": len(self.failed),
            "ambiguous": sum(o.ambiguous for o in self.failed),
        }

    def raise_for_failures(self) -> Self:
        """Raise if any push failed.

        Returns:
            This result, when every push succeeded.

        Raises:
            BatchError: Some push failed; `failed` holds the outcomes.
        """
        if self.failed:
            raise BatchError(self.failed, len(self._outcomes))
        return self

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"BatchResult({fields})"


# -- the run --------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Job:
    """One pulled item on its way: filled in place as it is looked up (one per push, owned
    by the run; `attrs.evolve` of a frozen class cost ~8 us a push, benchmarks/journal.py)."""

    index: int
    campaign_id: int | None
    push: WebPush | None
    launch: PreparedLaunch | None
    dedupe_key: str | None = None
    claim: Claim | None = None  # the journal's record of this position
    # A position the JSONL journal has no line of (a fresh batch's): written without a
    # claim, by its digest alone.
    digest: str | None = None
    action: Action = Action.SEND
    error: InsiderError | None = None  # the item could not be prepared: nothing is sent


@attrs.frozen
class _WorkerEnded:
    task: asyncio.Task[None]


def _position_digest(launch: PreparedLaunch, dedupe_key: str | None) -> str:
    """What a journal records of a position: the bytes sent, and the item's dedupe key (a
    rerun with other keys is a changed input)."""
    if dedupe_key is None:
        return launch.digest[:8].hex()
    return hashlib.sha256(launch.digest + b"\0" + dedupe_key.encode()).digest()[:8].hex()


def _split(item: object) -> tuple[int | None, WebPush, str | None]:
    """`(campaign_id, push, dedupe_key)` of one input item, or ValidationError naming it."""
    if isinstance(item, WebPush):
        return None, item, None
    if isinstance(item, Launch):
        return item.campaign_id, item.push, item.dedupe_key
    if isinstance(item, tuple) and len(item) == 2:
        if isinstance(item[1], WebPush):
            return item[0], item[1], None
        raise ValidationError(
            "push",
            "the second element of a (campaign_id, WebPush) pair must be a WebPush, "
            f"not {type(item[1]).__name__}",
        )
    raise ValidationError(
        "push",
        f"must be a WebPush, a Launch or a (campaign_id, WebPush) pair, not {type(item).__name__}",
    )


class _Run:
    """One pass over the input: the workers, the journal, and the outcomes as they finish."""

    def __init__(
        self,
        sender: Sender,
        pushes: Pushes,
        *,
        concurrency: int,
        journal: str | os.PathLike[str] | Journal | None,
        retry_ambiguous: bool,
        stop: asyncio.Event | None = None,
    ) -> None:
        concurrency = check_concurrency(concurrency)
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        # All workers start at once (started one by one as the input proved long enough, they
        # bunched arrivals enough to cost 429s at a 1 s scaled quota); never more than the
        # input has items when it knows its length: ten pushes do not start ten thousand.
        self._workers_wanted = concurrency
        if isinstance(pushes, Sized):
            self._workers_wanted = max(1, min(concurrency, len(pushes)))
        if isinstance(pushes, AsyncIterable):
            self._async = aiter(pushes)
        elif isinstance(pushes, Iterable) and not isinstance(pushes, str | bytes | WebPush):
            self._sync = iter(pushes)
        else:
            raise ValidationError(
                "pushes",
                f"must be an iterable or async iterable of WebPush, not {type(pushes).__name__}",
            )
        if journal is not None and not isinstance(journal, Journal):
            journal = os.fspath(journal)  # a TypeError now, not at the first iteration
        self._sender = sender
        self._concurrency = concurrency
        self._journal_spec = journal
        self._retry_ambiguous = retry_ambiguous
        self._journal: Ledger | None = None
        self._file_journal: FileJournal | None = None  # looked at without an await
        self._pull_lock = asyncio.Lock()
        self._next_index = 0
        self._exhausted = False
        self._stop_error: BaseException | None = None
        # Set by the first 401 or by `stop`: no new request starts after it.
        self._halted: NotSentError | None = None
        self._stop_event = stop
        self._stopped = False  # by `stop`: nothing more is pulled
        # Jobs that have not passed the gate yet in this run (so nothing of them is on the
        # wire): a halt cancels them, at once, rather than after their wait for the quota.
        self._waiting: dict[int, asyncio.Task[Any]] = {}
        self._keys: dict[str, asyncio.Event] = {}  # dedupe keys being sent by this batch
        self._halt_cancelled: set[int] = set()
        # Outcomes wait here for the consumer; `_room` bounds them to `concurrency`.
        self._queue: asyncio.Queue[Outcome | _WorkerEnded] = asyncio.Queue()
        self._room = asyncio.Semaphore(concurrency)
        self._workers: list[asyncio.Task[None]] = []
        self._alive = 0
        self._telemetry = telemetry.active()  # None without opentelemetry-api

    # pulling the input, one item at a time

    async def _next_job(self) -> _Job | None:
        store = self._journal is not None and self._file_journal is None
        if self._async is None and not store:
            return self._pull_sync()
        # An async generator cannot be entered twice; and a journal in a store is looked at
        # before the next item is pulled, so nothing after a mismatch is ever pulled.
        async with self._pull_lock:
            if self._async is None:
                job = self._pull_sync()
            else:
                if self._exhausted or self._stop_error is not None or self._stopped:
                    return None
                try:
                    item = await anext(self._async)
                except StopAsyncIteration:
                    self._exhausted = True
                    return None
                except Exception as exc:  # the input failed: finish what is in flight, raise
                    self._input_failed(exc)
                    return None
                job = self._plan(item)
            if job is None or not store or job.claim is None:
                return job
            try:
                action = await job.claim.look()
            except TransportError as exc:  # the store is down: this push is not sent
                job.claim, job.error = None, exc
                return job
            return self._decided(job, action)

    def _pull_sync(self) -> _Job | None:
        assert self._sync is not None
        if self._exhausted or self._stop_error is not None or self._stopped:
            return None
        try:
            item = next(self._sync)
        except StopIteration:
            self._exhausted = True
            return None
        except Exception as exc:
            self._input_failed(exc)
            return None
        return self._plan(item)

    def _input_failed(self, exc: Exception) -> None:
        error = BatchInputError(self._next_index, exc)
        error.__cause__ = exc
        self._stop(error)

    def _plan(self, item: object) -> _Job | None:
        # Runs with no await between the pull and a JSONL journal's check, so no push after a
        # mismatched one is ever pulled, let alone sent.
        index = self._next_index
        self._next_index += 1
        campaign_id: int | None = None
        push: WebPush | None = None
        dedupe_key: str | None = None
        launch: PreparedLaunch | None = None
        error: InsiderError | None = None
        try:
            campaign_id, push, dedupe_key = _split(item)
            launch = self._sender.prepare_launch(push, campaign_id=campaign_id)
        except ValidationError as exc:
            error = exc
        job = _Job(index, campaign_id, push, launch, dedupe_key, error=error)
        if self._journal is None:
            return job
        digest = _position_digest(launch, dedupe_key) if launch is not None else ""
        file_journal = self._file_journal
        if (
            file_journal is not None
            and launch is not None
            and (index >= file_journal.extent or file_journal.entry(index) is None)
        ):
            job.digest = digest  # nothing journaled: send, its lines written directly
            return job
        claim = Claim(
            self._journal,
            str(index),
            digest,
            lease=_JOURNAL_LEASE,
            retry_ambiguous=self._retry_ambiguous,
            label=f"push #{index}",
            # Held by another run of this batch, or by one that died with it on the wire:
            # either way it may have gone out.
            in_flight_is_ambiguous=True,
        )
        job.claim = claim
        if self._file_journal is None:
            return job  # looked at in _next_job, with an await
        return self._decided(job, claim.seen(self._file_journal.entry(index)))

    def _decided(self, job: _Job, action: Action) -> _Job | None:
        """The job with its journal's verdict; None (and the batch stopping) on a mismatch."""
        claim = job.claim
        assert claim is not None
        if action is Action.MISMATCH or (job.launch is None and claim.previous is not None):
            # A push no longer valid where one was journaled is a changed input too.
            assert claim.previous is not None
            now = claim.digest or "not a valid push"
            self._stop(JournalMismatchError(job.index, claim.previous.digest, now))
            return None
        job.action = action
        return job

    def _halt(self, error: NotSentError) -> None:
        """No new request starts; the jobs still before their gate end now, not sent."""
        if self._halted is not None:
            return
        self._halted = error
        for index, task in self._waiting.items():
            self._halt_cancelled.add(index)
            task.cancel()
        self._waiting.clear()

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopped = True
        self._halt(NotSentError("not sent: the batch was stopped before this push went out"))

    def _stop(self, error: BaseException) -> None:
        if self._stop_error is None:
            self._stop_error = error

    # the workers

    def _spawn(self) -> None:
        number = len(self._workers)
        task = asyncio.create_task(self._work(), name=f"insider-webpush batch {number}")
        task.add_done_callback(lambda t: self._queue.put_nowait(_WorkerEnded(t)))
        self._workers.append(task)
        self._alive += 1

    async def _work(self) -> None:
        while (job := await self._next_job()) is not None:
            outcome = await self._outcome(job)
            if self._telemetry is not None:
                self._telemetry.batch_outcome(outcome)
            await self._room.acquire()
            self._queue.put_nowait(outcome)

    async def _outcome(self, job: _Job) -> Outcome:
        if job.error is not None or job.launch is None:
            return Outcome(job.index, job.push, job.campaign_id, error=job.error)
        claim, action = job.claim, job.action
        if claim is not None and action not in (Action.SEND, Action.RESEND):
            return self._recorded(job, claim, action, claim.previous)
        if self._halted is not None:
            return Outcome(job.index, job.push, job.campaign_id, error=self._halted)
        attempts = 0
        digest, file_journal = job.digest, self._file_journal
        task = asyncio.current_task()
        assert task is not None
        self._waiting[job.index] = task
        if self._telemetry is not None:
            self._telemetry.batch_in_flight(1)

        def on_attempt(attempt: int) -> Awaitable[None] | None:
            # The grant is taken and the connection ready: the first byte goes next, unless
            # the batch was halted meanwhile (then nothing is written: a certain failure).
            nonlocal attempts
            if self._halted is not None:
                raise self._halted
            self._waiting.pop(job.index, None)
            if digest is not None:
                assert file_journal is not None
                file_journal.write_sending(job.index, digest, attempt)
                attempts = attempt  # after the line: a failed write took nothing
                return None
            attempts = attempt
            return claim.take_at_wire(attempt) if claim is not None else None

        result: LaunchResult | None = None
        error: InsiderError | None = None
        key = job.dedupe_key
        key_free: asyncio.Event | None = None
        try:
            if key is not None:
                # Two items of this batch with one key: the second waits for the first, then
                # finds it done (a replay), never "in flight" by its own batch.
                while (busy := self._keys.get(key)) is not None:
                    await busy.wait()
                key_free = self._keys[key] = asyncio.Event()
            result = await self._sender.send_prepared(
                job.launch,
                on_attempt=on_attempt,
                dedupe_key=job.dedupe_key,
                retry_ambiguous=self._retry_ambiguous,
            )
        except Taken as lost:  # another run of this batch wrote the position meanwhile
            assert claim is not None
            return self._recorded(job, claim, lost.action, lost.entry)
        except InsiderError as exc:
            error = exc
            if isinstance(exc, AuthenticationError):
                self._halt(
                    NotSentError(
                        f"not sent: the batch stopped at the 401 of push #{job.index} (the "
                        f"API key was refused: {exc})",
                        cause=exc,
                        index=job.index,
                    )
                )
        except asyncio.CancelledError:
            if job.index not in self._halt_cancelled:
                raise
        finally:
            self._waiting.pop(job.index, None)
            if key_free is not None:
                del self._keys[key]  # type: ignore[arg-type]
                key_free.set()
            if self._telemetry is not None:
                self._telemetry.batch_in_flight(-1)
        if job.index in self._halt_cancelled:  # cancelled before its gate: nothing went out
            self._halt_cancelled.discard(job.index)
            task.uncancel()
            result, error = None, self._halted
        before = claim.attempts_before if claim is not None else 0
        previous = claim.previous if claim is not None else None
        outcome = Outcome(
            job.index,
            job.push,
            job.campaign_id,
            result=result,
            error=error,
            attempts=before + attempts,
            resent_after=previous.failure.rebuild()
            if previous is not None and previous.failure is not None
            else None,
        )
        # Decided by the key's own record, nothing sent: the position keeps that outcome too,
        # so a rerun reports it rather than sending it again (with an in-memory dedupe store,
        # the next process has no record of the key).
        decided_by_key = key is not None and (
            (result is not None and result.replayed) or isinstance(error, DedupeConflictError)
        )
        if digest is not None:
            assert file_journal is not None
            if attempts or decided_by_key:  # its `sending` line written, or decided by the key
                file_journal.write_outcome(job.index, digest, attempts, result, error)
        elif claim is not None and (claim.held or decided_by_key):
            await claim.record(result, error)
        return outcome

    @staticmethod
    def _recorded(job: _Job, claim: Claim, action: Action, entry: Entry | None) -> Outcome:
        """The outcome of a push the journal says not to send."""
        result: LaunchResult | None = None
        error: InsiderError | None = None
        if action is Action.REPLAY and entry is not None:
            result = claim.replayed(entry)
        elif action is Action.AMBIGUOUS and entry is not None and entry.failure is not None:
            error = entry.failure.rebuild()
        else:
            error = claim.conflict(action, entry)
        return Outcome(
            job.index,
            job.push,
            job.campaign_id,
            result=result,
            error=error,
            attempts=entry.attempts if entry is not None else 0,
            from_journal=True,
        )

    # the consumer side

    async def outcomes(self) -> AsyncGenerator[Outcome, None]:
        """The outcomes as they finish; closing this stops the workers and the journal."""
        try:
            spec = self._journal_spec
            if isinstance(spec, Journal):
                # Under the sender's base URL and key: one name in staging and production
                # are two batches.
                self._journal = spec.open(self._sender.ledger_namespace)
            elif spec is not None:
                self._journal = self._file_journal = FileJournal(spec)
            for _ in range(self._workers_wanted):
                self._spawn()
            if self._stop_event is not None:
                watcher = asyncio.create_task(self._watch(self._stop_event))
                self._workers.append(watcher)  # cancelled and awaited with the workers
            file_journal = self._file_journal
            while self._alive:
                item = await self._queue.get()
                if isinstance(item, Outcome):
                    self._room.release()
                    if file_journal is not None:
                        # Its `done` line reaches the OS before the outcome reaches the
                        # caller: this loop may take several outcomes off the queue before
                        # the journal's own flush (scheduled when the line was written) runs,
                        # e.g. once woken by a worker's end. A failed write stops the batch.
                        file_journal.flush()
                    yield item
                    continue
                self._alive -= 1
                if not item.task.cancelled() and (exc := item.task.exception()) is not None:
                    raise exc  # a bug or an I/O error: stop everything now
            if self._stop_error is not None:
                raise self._stop_error
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Cancel and wait for every worker, even if cancelled again meanwhile, then close
        the journal: a push in flight keeps its `sending` line without a `done` one."""
        for task in self._workers:
            task.cancel()
        cancelled = False
        while pending := [t for t in self._workers if not t.done()]:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled = True
        for task in self._workers:
            if not task.cancelled():
                task.exception()  # retrieved: a second failure is not logged as "never retrieved"
        if self._journal is not None:
            await self._journal.aclose()
        if cancelled:
            raise asyncio.CancelledError


# -- the entry points -----------------------------------------------------------------------


def stream(
    sender: Sender,
    pushes: Pushes,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    journal: str | os.PathLike[str] | Journal | None = None,
    retry_ambiguous: bool = False,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[Outcome, None]:
    """[`WebPushClient.stream`][insider_webpush.client.WebPushClient.stream] over any sender.

    Arguments are checked now; nothing runs until the first iteration.

    Args:
        sender: What prepares and sends each launch, e.g. a `WebPushClient`.
        pushes: As for `WebPushClient.stream`.
        concurrency: As for `WebPushClient.stream`.
        journal: As for `WebPushClient.stream`.
        retry_ambiguous: As for `WebPushClient.stream`.

    Returns:
        An async generator of the outcomes, as they finish.

    Raises:
        ValidationError: `concurrency` is out of range, or `pushes` is not iterable.
    """
    run = _Run(
        sender,
        pushes,
        concurrency=concurrency,
        journal=journal,
        retry_ambiguous=retry_ambiguous,
        stop=stop,
    )
    return run.outcomes()


async def send_many(
    sender: Sender,
    pushes: Pushes,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    journal: str | os.PathLike[str] | Journal | None = None,
    retry_ambiguous: bool = False,
    stop: asyncio.Event | None = None,
) -> BatchResult:
    """[`WebPushClient.send_many`][insider_webpush.client.WebPushClient.send_many] over any
    sender.

    Args:
        sender: What prepares and sends each launch, e.g. a `WebPushClient`.
        pushes: As for `WebPushClient.send_many`.
        concurrency: As for `WebPushClient.send_many`.
        journal: As for `WebPushClient.send_many`.
        retry_ambiguous: As for `WebPushClient.send_many`.

    Returns:
        The outcomes, in input order.

    Raises:
        ValidationError: `concurrency` is out of range, or `pushes` is not iterable.
        BatchInputError: The input raised; `.result` holds the outcomes before it.
        JournalMismatchError: A push no longer matches the journal; `.result` holds the
            outcomes before it.
        JournalError: The journal cannot be used.
    """
    run = _Run(
        sender,
        pushes,
        concurrency=concurrency,
        journal=journal,
        retry_ambiguous=retry_ambiguous,
        stop=stop,
    )
    # Outcomes arrive at most ~2 x concurrency out of order: slot them by index.
    slots: list[Outcome | None] = []
    try:
        async with contextlib.aclosing(run.outcomes()) as outcomes:
            async for outcome in outcomes:
                if outcome.index >= len(slots):
                    slots.extend([None] * (outcome.index + 1 - len(slots)))
                slots[outcome.index] = outcome
    except (BatchInputError, JournalMismatchError) as exc:
        exc.result = BatchResult(o for o in slots if o is not None)
        raise
    ordered = [o for o in slots if o is not None]
    if len(ordered) != len(slots):  # every pulled push gets an outcome; a gap is a bug
        raise RuntimeError("insider_webpush.batch lost an outcome; please report this")
    return BatchResult(ordered)
