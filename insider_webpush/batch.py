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
connection is ready, immediately before its first byte is written; the `done` line when the
push ends (a failure adds `error`, `message`, `retry_after` and, for a transport error,
`stage`; `status` is the HTTP status of a failure, null for a success or a transport
error). `hash` is the first 64 bits of SHA-256 over the method, path and body bytes that are
sent. A push that failed before any attempt (a `ValidationError`) writes nothing: it is
checked again on a rerun.

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
push in memory. The flush per line hands it to the operating system, which keeps it when the
process is killed (SIGKILL, the OOM killer, a crash); surviving power loss or a kernel crash
would need an fsync per line (milliseconds each, on the event loop), which is not offered.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from typing import IO, Any, Final, Self, overload

import attrs

from . import telemetry
from .errors import (
    AuthenticationError,
    InsiderError,
    TransportError,
    ValidationError,
    error_for_status,
)
from .models import CAMPAIGN_ID_MAX, LaunchResult, WebPush, check_concurrency
from .outcomes import Stage
from .sender import PreparedLaunch, Sender

if sys.platform != "win32":
    import fcntl

# send_many / stream are reached through WebPushClient's methods of the same names.
__all__ = [
    "BatchError",
    "BatchInputError",
    "BatchResult",
    "JournalError",
    "JournalMismatchError",
    "NotSentError",
    "Outcome",
    "PushItem",
]

DEFAULT_CONCURRENCY = 64
"""Workers of a batch when `concurrency` is not given."""

PushItem = WebPush | tuple[int | None, WebPush]
"""One input of a batch: a push, or a `(campaign_id, push)` pair to launch a draft."""

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


# -- the journal ----------------------------------------------------------------------------


class JournalError(InsiderError):
    """The journal cannot be used: not a journal, a damaged line, or in use by another batch."""


class JournalMismatchError(JournalError):
    """The push at `index` is not the one the journal recorded there.

    The input changed since the journal was written (a push edited, inserted or removed, or
    the client's partner id changed). Nothing from it on is sent, since the journal can no
    longer say what went out; restore the input, or use a new journal for a new batch.

    Args:
        index: The push's position.
        journaled: The hash the journal holds, in hex.
        now: The push's hash now, in hex.

    Attributes:
        index: As given.
        result: The outcomes reported before it, a
            [`BatchResult`][insider_webpush.batch.BatchResult], from `send_many`; None from
            `stream`.
    """

    def __init__(self, index: int, journaled: str, now: str) -> None:
        self.index = index
        self.result: BatchResult | None = None  # what was reported before it (send_many)
        super().__init__(
            f"push #{index} does not match the journal (journaled hash {journaled}, now {now}): "
            "the input changed since the journal was written; nothing more was sent"
        )


_HEADER: Final = {"journal": "insider-webpush batch", "version": 2}
_HASH_BYTES = 8  # 64 bits tell an edited push from the journaled one
# A journal grows by the pushes a batch pulls; a gap this long (that many pushes in a row
# that failed validation, so were never journaled) is a damaged line, not a batch.
_MAX_GAP = 1_000_000

# What the journal says of a push index, kept in a bytearray: one byte per push.
_ABSENT, _SENDING, _OK, _FAILED = 0, 1, 2, 3


def _push_hash(launch: PreparedLaunch) -> int:
    # Exactly what goes on the wire: method, path and body bytes.
    return int.from_bytes(launch.digest[:_HASH_BYTES], "big")


def _hex(key: int) -> str:
    return f"{key:0{2 * _HASH_BYTES}x}"


@attrs.frozen
class _Failure:
    error: str
    message: str
    status: int | None
    retry_after: float | None
    ambiguous: bool
    stage: Stage | None = None


def _field(line: dict[str, Any], name: str, check: Any, *, optional: bool = False) -> Any:
    value = line.get(name)
    if value is None:
        if optional:
            return None
        if name not in line:
            raise ValueError(f"{name}: is missing")
    try:
        return check(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: {check.__doc__}") from None


def _whole(value: object) -> int:
    """must be a whole number, 0 or more"""
    if type(value) is not int or value < 0:
        raise ValueError
    return value


def _count(value: object) -> int:
    """must be a whole number of attempts, 0 to 65535"""
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        raise ValueError
    return value


def _hash(value: object) -> int:
    """must be 16 hexadecimal digits"""
    if not isinstance(value, str) or len(value) != 2 * _HASH_BYTES:
        raise ValueError
    return int(value, 16)


def _flag(value: object) -> bool:
    """must be true or false"""
    if not isinstance(value, bool):
        raise ValueError
    return value


def _campaign_id(value: object) -> int:
    """must be a campaign id, a positive whole number"""
    if type(value) is not int or not 0 < value <= CAMPAIGN_ID_MAX:
        raise ValueError
    return value


def _status(value: object) -> int:
    """must be an HTTP status, 100 to 599"""
    if type(value) is not int or not 100 <= value <= 599:
        raise ValueError
    return value


def _seconds(value: object) -> float:
    """must be a number of seconds, 0 or more"""
    if type(value) not in (int, float) or not 0 <= value < float("inf"):  # type: ignore[operator]
        raise ValueError
    return float(value)  # type: ignore[arg-type]


def _text(value: object) -> str:
    """must be a string"""
    if not isinstance(value, str):
        raise ValueError
    return value


def _stage(value: object) -> Stage:
    """must be 'not sent', 'writing' or 'sent'"""
    return Stage(value)


class _Journal:
    """An open journal: what earlier runs recorded, and the file to append to.

    The record of earlier runs is kept in flat arrays indexed by push (about 21 bytes a push),
    and failures in a dict, so resuming a million pushes costs tens of MB, not a dict each.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._hashes = array.array("Q")
        self._states = bytearray()
        self._attempts = array.array("I")
        self._campaign_ids = array.array("q")
        self._failures: dict[int, _Failure] = {}
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - closed by close()
        try:
            if sys.platform != "win32":
                try:
                    # A second batch on the same journal would resend what this one sends.
                    fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise JournalError(
                        f"journal {os.fspath(path)!r} is in use by another batch"
                    ) from None
            self._load(os.fspath(path))
        except BaseException:
            self._file.close()
            raise

    # reading

    def _load(self, path: str) -> None:
        self._file.seek(0)
        header = json.dumps(_HEADER, separators=(",", ":")).encode() + b"\n"
        end_of_good = 0  # offset just past the last complete, readable line
        needs_newline = False
        for number, raw in enumerate(self._file, start=1):
            if number == 1 and raw.rstrip(b"\n") != header.rstrip(b"\n"):
                _check_version(path, raw)
                if raw.endswith(b"\n") or not header.startswith(raw):
                    # Never truncate or append to a file that is not ours (e.g. the input).
                    raise JournalError(f"{path!r} is not an insider-webpush batch journal")
                break  # a header torn by a crash before any push was journaled
            try:
                if number > 1:
                    try:
                        data = json.loads(raw)
                    except (ValueError, RecursionError):  # incl. UnicodeDecodeError
                        raise ValueError("it is not a line of JSON") from None
                    self._apply(data)
            except ValueError as exc:
                if not raw.endswith(b"\n"):
                    break  # torn: the process died while writing it; dropped below
                raise JournalError(f"journal {path!r} line {number} is damaged: {exc}") from None
            end_of_good += len(raw)
            needs_newline = not raw.endswith(b"\n")
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() != end_of_good:
            self._file.truncate(end_of_good)
        if needs_newline:
            self._write(b"\n")  # a complete last line that only lost its newline
        if end_of_good == 0:
            self._write(header)

    def _apply(self, line: object) -> None:
        # Every field is checked by name: a damaged line is reported in plain words.
        if not isinstance(line, dict):
            raise ValueError("it is not a JSON object")
        index = _field(line, "index", _whole)
        key = _field(line, "hash", _hash)
        if index - len(self._states) > _MAX_GAP:  # memory grows with the index: ~21 B each
            raise ValueError(
                f"index {index} is more than {_MAX_GAP} beyond the journal's last push"
            )
        if index >= len(self._states):
            grow = index + 1 - len(self._states)
            self._states.extend(bytes(grow))
            for column in (self._hashes, self._attempts, self._campaign_ids):
                column.frombytes(bytes(column.itemsize * grow))
        if self._states[index] != _ABSENT and self._hashes[index] != key:
            raise ValueError(f"push #{index} has two different hashes")
        self._hashes[index] = key
        event = line.get("event")
        if event == "sending":
            attempt = _field(line, "attempt", _count)
            self._states[index] = _SENDING
            self._attempts[index] = max(self._attempts[index], attempt)
            self._failures.pop(index, None)
        elif event == "done":
            self._attempts[index] = _field(line, "attempts", _count)
            ok = _field(line, "ok", _flag)
            if ok:
                self._campaign_ids[index] = _field(line, "campaign_id", _campaign_id)
                self._states[index] = _OK
            else:
                stage = _field(line, "stage", _stage, optional=True)
                failure = _Failure(
                    error=_field(line, "error", _text),
                    message=_field(line, "message", _text, optional=True) or "",
                    status=_field(line, "status", _status, optional=True),
                    retry_after=_field(line, "retry_after", _seconds, optional=True),
                    ambiguous=_field(line, "ambiguous", _flag),
                    stage=stage,
                )
                self._states[index] = _FAILED
                self._failures[index] = failure
        else:
            raise ValueError("event: must be 'sending' or 'done'")

    def replay(self, index: int, key: int | None, *, retry_ambiguous: bool) -> _Replay:
        """What to do with the push at `index` whose hash is now `key` (None: the item
        is not a valid push now)."""
        state = self._states[index] if index < len(self._states) else _ABSENT
        if state == _ABSENT:
            return _SEND
        if key is None or self._hashes[index] != key:
            now = "not a valid push" if key is None else _hex(key)
            raise JournalMismatchError(index, _hex(self._hashes[index]), now)
        attempts = self._attempts[index]
        error: InsiderError | None = None
        if state == _OK:
            result = LaunchResult(success=True, campaign_id=self._campaign_ids[index])
            return _Replay(send=False, result=result, attempts=attempts)
        if state == _SENDING:
            error = TransportError(
                f"no answer was journaled for attempt {attempts}: the batch stopped after it "
                "went on the wire, so the push may have gone out",
                stage=Stage.SENT,
            )
        else:
            error = _rebuild(self._failures[index])
        # A certain failure: nothing can have gone out, so sending again is safe; an ambiguous
        # one only by the caller's decision.
        if not error.ambiguous or retry_ambiguous:
            return _Replay(send=True, attempts=attempts, resent=error)
        return _Replay(send=False, error=error, attempts=attempts)

    # writing

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()  # to the OS: survives the process being killed, not power loss

    def _write_line(self, line: dict[str, Any]) -> None:
        self._write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def sending(self, index: int, key: int, attempt: int) -> None:
        self._write_line(
            {"event": "sending", "index": index, "hash": _hex(key), "attempt": attempt}
        )

    def done(self, outcome: Outcome, key: int) -> None:
        line: dict[str, Any] = {
            "event": "done",
            "index": outcome.index,
            "hash": _hex(key),
            "attempts": outcome.attempts,
            "ok": outcome.ok,
            "status": getattr(outcome.error, "status", None),
            "campaign_id": outcome.result.campaign_id if outcome.result else None,
            "ambiguous": outcome.ambiguous,
        }
        if outcome.error is not None:
            line["error"] = type(outcome.error).__name__
            line["message"] = getattr(outcome.error, "message", None) or str(outcome.error)
            line["retry_after"] = getattr(outcome.error, "retry_after", None)
            if isinstance(outcome.error, TransportError):
                line["stage"] = outcome.error.stage.value
        self._write_line(line)

    def close(self) -> None:
        self._file.close()  # also releases the lock


def _rebuild(failure: _Failure) -> InsiderError:
    """The typed error a journaled failure was reported with."""
    error: InsiderError
    if failure.status is not None:
        error = error_for_status(failure.status, failure.message, retry_after=failure.retry_after)
    elif failure.error == TransportError.__name__:
        stage = failure.stage or (Stage.SENT if failure.ambiguous else Stage.NOT_SENT)
        error = TransportError(failure.message, stage=stage)
    else:
        error = InsiderError(f"{failure.error}: {failure.message}")
    error.ambiguous = failure.ambiguous  # e.g. an unreadable 2xx body is ambiguous
    return error


@attrs.frozen
class _Replay:
    send: bool
    result: LaunchResult | None = None
    error: InsiderError | None = None
    attempts: int = 0
    resent: InsiderError | None = None  # the journaled failure a resend follows


def _check_version(path: str, raw: bytes) -> None:
    """A journal of another format version is refused by name, not as a foreign file."""
    try:
        line = json.loads(raw)
    except ValueError:
        return
    if (
        isinstance(line, dict)
        and line.get("journal") == _HEADER["journal"]
        and line.get("version") != _HEADER["version"]
    ):
        raise JournalError(
            f"journal {path!r} is format version {line.get('version')!r}; this insider-webpush "
            f"writes version {_HEADER['version']} (it hashes the exact bytes sent): finish "
            "that batch with the version that began it, or start a new journal"
        )


# -- the run --------------------------------------------------------------------------------


@attrs.frozen
class _Job:
    index: int
    campaign_id: int | None
    push: WebPush | None
    launch: PreparedLaunch | None
    key: int
    replay: _Replay
    error: InsiderError | None = None  # the item could not be prepared: nothing is sent


@attrs.frozen
class _WorkerEnded:
    task: asyncio.Task[None]


def _split(item: object) -> tuple[int | None, WebPush]:
    """`(campaign_id, push)` of one input item, or ValidationError naming what it is."""
    if isinstance(item, WebPush):
        return None, item
    if isinstance(item, tuple) and len(item) == 2:
        if isinstance(item[1], WebPush):
            return item[0], item[1]
        raise ValidationError(
            "push",
            "the second element of a (campaign_id, WebPush) pair must be a WebPush, "
            f"not {type(item[1]).__name__}",
        )
    raise ValidationError(
        "push",
        f"must be a WebPush or a (campaign_id, WebPush) pair, not {type(item).__name__}",
    )


_SEND: Final = _Replay(send=True)


class _Run:
    """One pass over the input: the workers, the journal, and the outcomes as they finish."""

    def __init__(
        self,
        sender: Sender,
        pushes: Pushes,
        *,
        concurrency: int,
        journal: str | os.PathLike[str] | None,
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
        if journal is not None:
            journal = os.fspath(journal)  # a TypeError now, not at the first iteration
        self._sender = sender
        self._concurrency = concurrency
        self._journal_path = journal
        self._retry_ambiguous = retry_ambiguous
        self._journal: _Journal | None = None
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
        self._halt_cancelled: set[int] = set()
        # Outcomes wait here for the consumer; `_room` bounds them to `concurrency`.
        self._queue: asyncio.Queue[Outcome | _WorkerEnded] = asyncio.Queue()
        self._room = asyncio.Semaphore(concurrency)
        self._workers: list[asyncio.Task[None]] = []
        self._alive = 0
        self._telemetry = telemetry.active()  # None without opentelemetry-api

    # pulling the input, one item at a time

    async def _next_job(self) -> _Job | None:
        if self._async is None:
            return self._pull_sync()
        async with self._pull_lock:  # an async generator cannot be entered twice
            if self._exhausted or self._stop_error is not None or self._stopped:
                return None
            try:
                item = await anext(self._async)
            except StopAsyncIteration:
                self._exhausted = True
                return None
            except Exception as exc:  # the input failed: finish what is in flight, then raise
                self._input_failed(exc)
                return None
            return self._plan(item)

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
        # Runs with no await between the pull and the journal check, so no push after a
        # mismatched one is ever pulled, let alone sent.
        index = self._next_index
        self._next_index += 1
        campaign_id: int | None = None
        push: WebPush | None = None
        launch: PreparedLaunch | None = None
        error: InsiderError | None = None
        try:
            campaign_id, push = _split(item)
            launch = self._sender.prepare_launch(push, campaign_id=campaign_id)
        except ValidationError as exc:
            error = exc
        key = _push_hash(launch) if launch is not None and self._journal is not None else 0
        replay = _SEND
        if self._journal is not None:
            try:
                replay = self._journal.replay(
                    index,
                    key if launch is not None else None,
                    retry_ambiguous=self._retry_ambiguous,
                )
            except JournalMismatchError as exc:
                self._stop(exc)
                return None
        return _Job(index, campaign_id, push, launch, key, replay, error)

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
        replay = job.replay
        if job.error is not None or job.launch is None:
            return Outcome(job.index, job.push, job.campaign_id, error=job.error)
        if not replay.send:
            return Outcome(
                job.index,
                job.push,
                job.campaign_id,
                result=replay.result,
                error=replay.error,
                attempts=replay.attempts,
                from_journal=True,
            )
        if self._halted is not None:
            return Outcome(job.index, job.push, job.campaign_id, error=self._halted)
        journal = self._journal
        attempts = 0
        task = asyncio.current_task()
        assert task is not None
        self._waiting[job.index] = task
        if self._telemetry is not None:
            self._telemetry.batch_in_flight(1)

        def on_attempt(attempt: int) -> None:
            # The grant is taken and the connection ready: the first byte goes next, unless
            # the batch was halted meanwhile (then nothing is written: a certain failure).
            nonlocal attempts
            if self._halted is not None:
                raise self._halted
            self._waiting.pop(job.index, None)
            attempts = attempt
            if journal is not None:
                journal.sending(job.index, job.key, replay.attempts + attempt)

        result: LaunchResult | None = None
        error: InsiderError | None = None
        try:
            result = await self._sender.send_prepared(job.launch, on_attempt=on_attempt)
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
            if self._telemetry is not None:
                self._telemetry.batch_in_flight(-1)
        if job.index in self._halt_cancelled:  # cancelled before its gate: nothing went out
            self._halt_cancelled.discard(job.index)
            task.uncancel()
            result, error = None, self._halted
        outcome = Outcome(
            job.index,
            job.push,
            job.campaign_id,
            result=result,
            error=error,
            attempts=replay.attempts + attempts,
            resent_after=replay.resent,
        )
        if journal is not None and attempts:
            journal.done(outcome, job.key)
        return outcome

    # the consumer side

    async def outcomes(self) -> AsyncGenerator[Outcome, None]:
        """The outcomes as they finish; closing this stops the workers and the journal."""
        try:
            if self._journal_path is not None:
                self._journal = _Journal(self._journal_path)
            for _ in range(self._workers_wanted):
                self._spawn()
            if self._stop_event is not None:
                watcher = asyncio.create_task(self._watch(self._stop_event))
                self._workers.append(watcher)  # cancelled and awaited with the workers
            while self._alive:
                item = await self._queue.get()
                if isinstance(item, Outcome):
                    self._room.release()
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
            self._journal.close()
        if cancelled:
            raise asyncio.CancelledError


# -- the entry points -----------------------------------------------------------------------


def stream(
    sender: Sender,
    pushes: Pushes,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    journal: str | os.PathLike[str] | None = None,
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
    journal: str | os.PathLike[str] | None = None,
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
