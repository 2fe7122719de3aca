"""At-most-once records: a batch's journal and dedupe keys, one mechanism.

Insider has no idempotency key, so the SDK keeps its own record of what it launched. One
record, an [`Entry`][insider_webpush.ledger.Entry], per key, in a
[`Ledger`][insider_webpush.ledger.Ledger]. A key is either a push's position in a batch
(the batch journal) or a dedupe key given by the caller (`send(push, dedupe_key=...)`,
[`Launch`][insider_webpush.batch.Launch] items); both go through the same three steps of a
[`Claim`][insider_webpush.ledger.Claim] and the same rules
([`decide`][insider_webpush.ledger.decide]):

1. **Look** before waiting for the quota. Nothing recorded: send. `done`: its first result
   comes back (`LaunchResult.replayed`), nothing is sent. `failed` (a certain failure:
   nothing of it can have gone out): send again. `sending` younger than its lease: another
   holder is sending it now. `sending` older than its lease (its holder died or hung on the
   wire) or `ambiguous`: it may have gone out, so it is reported, never sent again, except
   with `retry_ambiguous=True`. Recorded for other bytes: a mismatch.
2. **Take** at the wire: once the quota's grant is taken and the connection is ready,
   immediately before the first byte, the entry becomes `sending`, atomically, only if it
   is still what step 1 saw (compare-and-set). Two senders of one key cannot both pass
   this; the loser sends nothing.
3. **Settle** with the answer: `done` (the campaign id), `failed` or `ambiguous`, by the
   outcome table. A holder that dies between 2 and 3 leaves `sending`: ambiguous, as it
   should be, since its request may have gone out.

Stores:

- [`FileJournal`][insider_webpush.ledger.FileJournal], the JSONL batch journal
  (`send_many(..., journal="run.jsonl")`): one batch at a time (an exclusive `flock`),
  positions only, ~21 bytes a push in memory on a rerun.
- [`MemoryLedger`][insider_webpush.ledger.MemoryLedger]: one per process, shared by every
  client and loop in it; the default dedupe store when there is no `redis_url`.
- [`SQLiteLedger`][insider_webpush.ledger.SQLiteLedger]: a file, shared by the processes of
  one host (`dedupe_store="/var/lib/app/dedupe.sqlite"`).
- [`RedisLedger`][insider_webpush.ledger.RedisLedger]: every process and host that reaches
  the Redis (`dedupe_store="redis://..."`, the default with `redis_url`); one atomic round
  trip (a Lua script) per step.

A batch journaled in any store but the JSONL file names itself with
[`Journal`][insider_webpush.ledger.Journal]`(store, name)`, so it can be resumed on another
host. Entries expire `dedupe_ttl` seconds (default 7 days) after their last write; the JSONL
journal never expires. Durability is the store's: the JSONL journal and SQLite (WAL,
`synchronous=NORMAL`) survive the process being killed, not power loss; Redis as its
persistence is configured (`appendonly yes` for a record that survives a restart).
No entry holds the API key.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import enum
import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any, ClassVar, Final, Protocol, runtime_checkable

import attrs

from .errors import (
    DedupeConflictError,
    InsiderError,
    JournalError,
    MissingExtraError,
    TransportError,
    ValidationError,
    error_for_status,
)
from .models import CAMPAIGN_ID_MAX, LaunchResult, check_dedupe_ttl
from .outcomes import Stage

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_DEDUPE_TTL",
    "SWAP_LUA",
    "Action",
    "Claim",
    "Entry",
    "Failure",
    "FileJournal",
    "Journal",
    "Ledger",
    "MemoryLedger",
    "RedisLedger",
    "SQLiteLedger",
    "State",
    "Taken",
    "decide",
    "open_ledger",
]

logger = logging.getLogger("insider_webpush")

DEFAULT_DEDUPE_TTL: Final = 7 * 24 * 3600.0
"""Seconds an entry is kept after its last write: 7 days."""


class State(enum.Enum):
    """What a ledger says of a key."""

    SENDING = "sending"
    """Taken at the wire; no answer recorded yet."""
    DONE = "done"
    """Launched: Insider confirmed it."""
    FAILED = "failed"
    """A certain failure: nothing of it can have gone out."""
    AMBIGUOUS = "ambiguous"
    """It failed here but may have gone out."""


@attrs.frozen
class Failure:
    """A failure as recorded: enough to rebuild its typed error.

    Attributes:
        error: The exception's class name.
        message: Its message.
        status: The HTTP status, or None.
        retry_after: The `Retry-After` in seconds, or None.
        ambiguous: Whether it may have gone out.
        stage: How far a transport failure got, or None.
    """

    error: str
    message: str
    status: int | None
    retry_after: float | None
    ambiguous: bool
    stage: Stage | None = None

    @classmethod
    def of(cls, error: InsiderError) -> Failure:
        """The record of `error`."""
        stage = error.stage if isinstance(error, TransportError) else None
        return cls(
            error=type(error).__name__,
            message=getattr(error, "message", None) or str(error),
            status=getattr(error, "status", None),
            retry_after=getattr(error, "retry_after", None),
            ambiguous=error.ambiguous,
            stage=stage,
        )

    def rebuild(self) -> InsiderError:
        """The typed error this failure was reported with."""
        error: InsiderError
        if self.status is not None:
            error = error_for_status(self.status, self.message, retry_after=self.retry_after)
        elif self.error == TransportError.__name__:
            stage = self.stage or (Stage.SENT if self.ambiguous else Stage.NOT_SENT)
            error = TransportError(self.message, stage=stage)
        else:
            error = InsiderError(f"{self.error}: {self.message}")
        error.ambiguous = self.ambiguous  # e.g. an unreadable 2xx body is ambiguous
        return error


@attrs.frozen
class Entry:
    """One key's record.

    Attributes:
        state: What became of it.
        digest: 16 hex digits of SHA-256 over the method, path and body bytes sent.
        attempts: Attempts that went on the wire, over every run.
        campaign_id: The launched campaign (`State.DONE`), or None.
        failure: The failure (`State.FAILED`, `State.AMBIGUOUS`), or None.
        owner: The claim that wrote it (random), "" when the store does not keep it.
        at: Wall-clock seconds (`time.time()`) of the write; `-inf` when not kept.
    """

    state: State
    digest: str
    attempts: int = 0
    campaign_id: int | None = None
    failure: Failure | None = None
    owner: str = ""
    at: float = -math.inf

    def to_json(self) -> str:
        """The entry as compact JSON, the same text for equal entries."""
        data: dict[str, Any] = {
            "s": self.state.value,
            "d": self.digest,
            "n": self.attempts,
            "o": self.owner,
            "t": self.at,
        }
        if self.campaign_id is not None:
            data["c"] = self.campaign_id
        if self.failure is not None:
            f = self.failure
            data["f"] = [f.error, f.message, f.status, f.retry_after, f.ambiguous]
            if f.stage is not None:
                data["g"] = f.stage.value
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Entry:
        """Read an entry written by `to_json`.

        Raises:
            ValueError: It is not one.
        """
        try:
            data = json.loads(text)
            failure = None
            if "f" in data:
                error, message, status, retry_after, ambiguous = data["f"]
                stage = Stage(data["g"]) if "g" in data else None
                failure = Failure(
                    str(error), str(message), status, retry_after, bool(ambiguous), stage
                )
            return cls(
                State(data["s"]),
                str(data["d"]),
                int(data["n"]),
                data.get("c"),
                failure,
                str(data["o"]),
                float(data["t"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a ledger entry: {exc}") from None


class Action(enum.Enum):
    """What to do with a push, given its key's entry ([`decide`][insider_webpush.ledger.decide])."""

    SEND = "send"
    """Nothing is recorded: send it."""
    RESEND = "resend"
    """A certain failure (or an ambiguous one, under `retry_ambiguous`): send it again."""
    REPLAY = "replay"
    """Launched before: its result comes back; nothing is sent."""
    IN_FLIGHT = "in_flight"
    """Another holder is sending it now: nothing is sent."""
    AMBIGUOUS = "ambiguous"
    """It may have gone out: reported, nothing is sent."""
    MISMATCH = "mismatch"
    """The key was recorded for other bytes: nothing is sent."""


def decide(
    entry: Entry | None, digest: str, *, now: float, lease: float, retry_ambiguous: bool
) -> Action:
    """The rule for one key, for batch positions and dedupe keys alike.

    Args:
        entry: What the ledger holds, or None.
        digest: The digest of the push about to be sent.
        now: Wall-clock seconds.
        lease: Seconds a `sending` entry counts as in flight; after that its holder is taken
            to have died or hung on the wire, and the push as ambiguous.
        retry_ambiguous: Send again what may have gone out: the caller's decision to risk
            a duplicate.

    Returns:
        The action.
    """
    if entry is None:
        return Action.SEND
    if entry.digest != digest:
        return Action.MISMATCH
    state = entry.state
    if state is State.DONE:
        return Action.REPLAY
    if state is State.FAILED:
        return Action.RESEND
    if state is State.SENDING and now - entry.at < lease:
        return Action.IN_FLIGHT  # never taken over, whatever retry_ambiguous says
    return Action.RESEND if retry_ambiguous else Action.AMBIGUOUS


@runtime_checkable
class Ledger(Protocol):
    """A store of entries with compare-and-set: what a [`Claim`][insider_webpush.ledger.Claim]
    needs. Keys are strings; a ledger may keep only some kinds (the JSONL journal: positions)."""

    async def get(self, key: str) -> Entry | None:
        """The key's entry, or None.

        Raises:
            TransportError: The store cannot be reached (`stage=Stage.NOT_SENT`).
        """

    async def swap(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        """Write `entry` if the key's entry is `expected` (None: none), atomically.

        Returns:
            None when written; otherwise the entry found (None stays a failed write only
                when `expected` was not None, see the stores).

        Raises:
            TransportError: The store cannot be reached (`stage=Stage.NOT_SENT`).
        """

    async def aclose(self) -> None:
        """Release the store's connections or files."""


class Taken(Exception):
    """Raised at the gate when another holder wrote the key since the look: nothing is sent.

    Attributes:
        action: What the new entry says to do.
        entry: The entry found.
    """

    def __init__(self, action: Action, entry: Entry | None) -> None:
        super().__init__(action.value)
        self.action = action
        self.entry = entry


class Claim:
    """One push's claim on one key: look, take at the wire, settle.

    Args:
        ledger: The store.
        key: The key: a batch position or a dedupe key.
        digest: 16 hex digits of what is sent.
        lease: Seconds a `sending` entry of another holder counts as in flight.
        retry_ambiguous: Take over an ambiguous entry and send again.
        label: How messages name it, e.g. `"push #7"`; None: `"dedupe key '<key>'"`.
        in_flight_is_ambiguous: A key held by another holder may have gone out (a batch
            position: another run, or one that died on the wire); False (a dedupe key: ask
            again) by default.
    """

    __slots__ = (
        "_attempts",
        "_held",
        "_journal",
        "_ledger",
        "_owner",
        "_written",
        "digest",
        "in_flight_is_ambiguous",
        "key",
        "label",
        "lease",
        "previous",
        "retry_ambiguous",
    )

    def __init__(
        self,
        ledger: Ledger,
        key: str,
        digest: str,
        *,
        lease: float,
        retry_ambiguous: bool = False,
        label: str | None = None,
        in_flight_is_ambiguous: bool = False,
    ) -> None:
        self._ledger = ledger
        self.key = key
        self.digest = digest
        self.lease = lease
        self.retry_ambiguous = retry_ambiguous
        self.label = label if label is not None else f"dedupe key {key!r}"
        self.in_flight_is_ambiguous = in_flight_is_ambiguous
        self.previous: Entry | None = None  # what the look found
        self._written: Entry | None = None  # what the ledger holds, as far as we know
        # The JSONL journal, its only writer, writes its lines at once (no await, no entry
        # to compare) and keeps no owner: nothing else can have written the key.
        self._journal = ledger if isinstance(ledger, FileJournal) else None
        # Random, like a uuid4's hex (128 bits), at a quarter of its cost: one per push.
        self._owner = os.urandom(16).hex() if self._journal is None else ""
        self._held = False
        self._attempts = 0  # the attempts this claim's take recorded, once held

    @property
    def held(self) -> bool:
        """The key was taken at the wire by this claim: an attempt may have gone out."""
        return self._held

    @property
    def attempts_before(self) -> int:
        """Attempts recorded by earlier runs."""
        return self.previous.attempts if self.previous is not None else 0

    def action(self, entry: Entry | None) -> Action:
        """What `entry` says to do, now."""
        return decide(
            entry,
            self.digest,
            now=time.time(),
            lease=self.lease,
            retry_ambiguous=self.retry_ambiguous,
        )

    async def look(self) -> Action:
        """Read the key (before the quota's wait) and decide."""
        return self.seen(await self._ledger.get(self.key))

    def seen(self, entry: Entry | None) -> Action:
        """Decide on `entry`, read from the ledger by the caller."""
        self.previous = self._written = entry
        if entry is None:  # most keys, most positions: nothing to weigh, no clock to read
            return Action.SEND
        return self.action(entry)

    async def take(self, attempt: int) -> None:
        """Mark the key `sending`, at the wire, if nobody wrote it since.

        Args:
            attempt: This run's attempt number, from 1.

        Raises:
            Taken: Another holder wrote it: nothing may be sent.
            TransportError: The store cannot be reached: nothing may be sent.
        """
        pending = self.take_at_wire(attempt)
        if pending is not None:
            await pending

    def take_at_wire(self, attempt: int) -> Awaitable[None] | None:
        """`take`, done at once when the ledger writes at once (None), else its awaitable:
        what an [`AttemptHook`][insider_webpush.sender.AttemptHook] returns."""
        previous = self.previous
        attempts = attempt if previous is None else previous.attempts + attempt
        journal = self._journal
        if journal is not None:
            journal.write_sending(int(self.key), self.digest, attempts)
            self._attempts = attempts  # no entry to compare: the journal's only writer
            self._held = True
            return None
        entry = Entry(
            State.SENDING, self.digest, attempts=attempts, owner=self._owner, at=time.time()
        )
        return self._take(entry)

    async def _take(self, entry: Entry) -> None:
        self._taken(entry, await self._ledger.swap(self.key, entry, self._written))

    def _taken(self, entry: Entry, found: Entry | None) -> None:
        if found is not None:
            self._written = found
            raise Taken(self.action(found), found)
        self._written = entry
        self._attempts = entry.attempts
        self._held = True

    async def settle(self, result: LaunchResult | None, error: InsiderError | None) -> None:
        """Record the answer of a claim that was taken; nothing when it was not."""
        if self._held:
            await self.record(result, error)

    async def record(self, result: LaunchResult | None, error: InsiderError | None) -> None:
        """Record an outcome under the key, taken or not (e.g. a batch position whose push
        was decided by its dedupe key), if nobody wrote the key since this claim last did."""
        pending = self.record_now(result, error)
        if pending is not None:
            await pending

    def record_now(
        self, result: LaunchResult | None, error: InsiderError | None
    ) -> Awaitable[None] | None:
        """`record`, done at once when the ledger writes at once (None), else its
        awaitable."""
        journal = self._journal
        if self._held:
            attempts = self._attempts
        else:
            attempts = self._written.attempts if self._written is not None else 0
        if journal is not None:  # its only writer: no entry to compare, nothing to await
            journal.write_outcome(int(self.key), self.digest, attempts, result, error)
            return None
        state, campaign_id, failure = State.DONE, None, None
        if result is not None:
            campaign_id = result.campaign_id
        else:
            assert error is not None
            state = State.AMBIGUOUS if error.ambiguous else State.FAILED
            failure = Failure.of(error)
        entry = Entry(state, self.digest, attempts, campaign_id, failure, self._owner, time.time())
        return self._record(entry)

    async def _record(self, entry: Entry) -> None:
        self._recorded(entry, await self._ledger.swap(self.key, entry, self._written))

    def _recorded(self, entry: Entry, found: Entry | None) -> None:
        if found is None:
            self._written = entry
        else:  # another holder took the key over (retry_ambiguous elsewhere, an expiry)
            logger.warning(
                "%s: the record changed while it was sent (now %s); its outcome (%s) is not "
                "recorded",
                self.label,
                found.state.value,
                entry.state.value,
            )

    def replayed(self, entry: Entry) -> LaunchResult:
        """The result a `done` entry recorded, marked as replayed."""
        assert entry.campaign_id is not None
        return LaunchResult(success=True, campaign_id=entry.campaign_id, replayed=True)

    def conflict(self, action: Action, entry: Entry | None) -> DedupeConflictError:
        """The error of a push that is not sent because of its key's entry."""
        key, label = self.key, self.label
        if action is Action.IN_FLIGHT:
            return DedupeConflictError(
                f"{label} is being sent by another holder now; nothing was sent",
                dedupe_key=key,
                in_flight=True,
                ambiguous=self.in_flight_is_ambiguous,
            )
        if action is Action.MISMATCH:
            return DedupeConflictError(
                f"{label} was used for a different push; nothing was sent", dedupe_key=key
            )
        why = "its answer never came, or its sender died on the wire"
        if entry is not None and entry.failure is not None:
            why = f"its first attempt failed ambiguously: {entry.failure.message}"
        return DedupeConflictError(
            f"{label} may have gone out ({why}); it is not sent again, except with "
            "retry_ambiguous=True",
            dedupe_key=key,
            ambiguous=True,
        )


_SEP: Final = "\x1f"  # between a namespace and a key: a unit separator no key may hold


# -- in memory ------------------------------------------------------------------------------


class MemoryLedger:
    """Entries in this process's memory, shared by every client, loop and thread in it.

    Args:
        namespace: Prefix of every key, e.g. the API key's fingerprint.
        ttl: Seconds an entry is kept after its write.
    """

    # key -> (entry, expires), one dict per process. Entries are frozen: kept as they are,
    # compared by value, with no encoding (the shared stores compare their JSON text).
    _entries: ClassVar[dict[str, tuple[Entry, float]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, namespace: str, *, ttl: float = DEFAULT_DEDUPE_TTL) -> None:
        self._prefix = namespace + _SEP
        self._ttl = ttl

    def _read(self, key: str, now: float) -> Entry | None:
        found = self._entries.get(key)
        if found is None or found[1] <= now:
            return None
        return found[0]

    async def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._read(self._prefix + key, time.time())

    async def swap(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        now = time.time()
        name = self._prefix + key
        with self._lock:
            current = self._read(name, now)
            if current != expected:
                return current if current is not None else _GONE
            self._entries[name] = (entry, now + self._ttl)
            if len(self._entries) % 4096 == 0:  # now and then, forget what expired
                for old in [k for k, (_, end) in self._entries.items() if end <= now]:
                    del self._entries[old]
        return None

    async def aclose(self) -> None:
        """Nothing to release: the entries stay for the life of the process."""


def _after_fork_in_child() -> None:
    MemoryLedger._lock = threading.Lock()  # it may have been held by a thread that is gone


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


# A failed swap whose key has no entry any more (it expired under its holder): the holder
# lost it, and the caller must look again. An entry no key can have.
_GONE: Final = Entry(State.AMBIGUOUS, "", owner="gone")


# -- SQLite ---------------------------------------------------------------------------------


_INHERITED: list[sqlite3.Connection] = []  # a parent's connections, after a fork


class SQLiteLedger:
    """Entries in an SQLite file, shared by the processes of one host.

    Each step is one transaction (`BEGIN IMMEDIATE`), run in a worker thread so that a
    lock held by another process never blocks the event loop. WAL with
    `synchronous=NORMAL`: a write survives the process being killed.

    Args:
        path: The file; made with its table when missing.
        namespace: Prefix of every key.
        ttl: Seconds an entry is kept after its write.

    Raises:
        JournalError: The file is not an SQLite database.
    """

    def __init__(
        self, path: str | os.PathLike[str], namespace: str, *, ttl: float = DEFAULT_DEDUPE_TTL
    ) -> None:
        self.path = os.fspath(path)
        self._prefix = namespace + _SEP
        self._ttl = ttl
        self._lock = threading.Lock()
        self._pid = os.getpid()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:  # e.g. a folder that does not exist
            raise JournalError(
                f"{self.path!r} cannot be opened as an SQLite ledger: {exc}"
            ) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS insider_webpush_ledger "
                "(key TEXT PRIMARY KEY, entry TEXT NOT NULL, expires REAL NOT NULL)"
            )
            self._db.execute(
                "DELETE FROM insider_webpush_ledger WHERE expires <= ?", (time.time(),)
            )
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(f"{self.path!r} is not a usable SQLite ledger: {exc}") from None

    def _forked(self) -> None:
        """In a child made by fork: SQLite connections must not cross a fork, and the lock
        may be held by a thread that is gone. Open anew; keep the parent's, unused."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            # Closing it here could drop this process's own file locks (POSIX locks go with
            # any close of the file): it is kept, unused, for the life of the process.
            _INHERITED.append(self._db)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )

    def _get(self, name: str) -> str | None:
        self._forked()
        with self._lock:
            row = self._db.execute(
                "SELECT entry FROM insider_webpush_ledger WHERE key = ? AND expires > ?",
                (name, time.time()),
            ).fetchone()
        return row[0] if row else None

    def _swap(self, name: str, text: str, expected: str | None) -> str | None:
        now = time.time()
        self._forked()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT entry FROM insider_webpush_ledger WHERE key = ? AND expires > ?",
                    (name, now),
                ).fetchone()
                current = row[0] if row else None
                if current != expected:
                    return current if current is not None else ""
                self._db.execute(
                    "INSERT OR REPLACE INTO insider_webpush_ledger VALUES (?, ?, ?)",
                    (name, text, now + self._ttl),
                )
                return None
            finally:
                self._db.execute("COMMIT")

    async def get(self, key: str) -> Entry | None:
        text = await asyncio.to_thread(self._get, self._prefix + key)
        return Entry.from_json(text) if text is not None else None

    async def swap(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        found = await asyncio.to_thread(
            self._swap,
            self._prefix + key,
            entry.to_json(),
            expected.to_json() if expected is not None else None,
        )
        if found is None:
            return None
        return Entry.from_json(found) if found else _GONE

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()


# -- Redis ----------------------------------------------------------------------------------

SWAP_LUA: Final = """
-- Compare-and-set of one entry. KEYS[1] the entry; ARGV: 1 the new entry, 2 the expected
-- one ('' for none), 3 ms to keep it. Returns nil when written, else the entry found
-- ('' for none).
local current = redis.call('GET', KEYS[1])
if (not current and ARGV[2] == '') or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return false
end
if not current then return '' end
return current
"""
"""The compare-and-set script: one `EVALSHA` per take or settle."""


class RedisLedger:
    """Entries in Redis, shared by every process and host that reaches it.

    Each step is one round trip: a `GET` to look, one `EVALSHA` of
    [`SWAP_LUA`][insider_webpush.ledger.SWAP_LUA] to take or settle. The Redis client belongs
    to the event loop it is used on.

    Args:
        url: A Redis URL, e.g. `"redis://host:6379/0"`.
        namespace: Prefix of every key.
        ttl: Seconds an entry is kept after its write.
    """

    def __init__(self, url: str, namespace: str, *, ttl: float = DEFAULT_DEDUPE_TTL) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # the optional extra
            raise MissingExtraError(
                "a Redis dedupe store needs redis-py: pip install 'insider-webpush[redis]'"
            ) from exc
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=_REDIS_TIMEOUT)
        self._script = self._redis.register_script(SWAP_LUA)
        self._prefix = f"insider_webpush:ledger:{namespace}:"
        self._ttl_ms = max(1, math.ceil(ttl * 1000))

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                return await call()
        except (RedisError, OSError) as exc:  # TimeoutError included
            raise TransportError(
                f"the dedupe store in Redis is unreachable, nothing was sent: "
                f"{type(exc).__name__}: {exc}",
                stage=Stage.NOT_SENT,
            ) from None

    async def get(self, key: str) -> Entry | None:
        found = await self._call(lambda: self._redis.get(self._prefix + key))
        return Entry.from_json(found) if found is not None else None

    async def swap(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        args = (entry.to_json(), expected.to_json() if expected is not None else "", self._ttl_ms)
        found = await self._call(lambda: self._script(keys=[self._prefix + key], args=args))
        if found is None:
            return None
        return Entry.from_json(found) if found else _GONE

    async def aclose(self) -> None:
        await self._redis.aclose()


_REDIS_TIMEOUT: Final = 2.0  # seconds a ledger call may take before Redis counts as down


def open_ledger(
    store: str | os.PathLike[str] | Ledger | None, namespace: str, *, ttl: float
) -> Ledger:
    """The ledger a `dedupe_store=` or a [`Journal`][insider_webpush.ledger.Journal] names.

    Args:
        store: A `redis://`/`rediss://` URL, an SQLite file's path, a
            [`Ledger`][insider_webpush.ledger.Ledger], or None for this process's memory.
        namespace: Prefix of every key.
        ttl: Seconds an entry is kept after its write.

    Returns:
        The ledger.
    """
    if store is None:
        return MemoryLedger(namespace, ttl=ttl)
    if isinstance(store, Ledger):
        return store
    text = os.fspath(store)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisLedger(text, namespace, ttl=ttl)
    return SQLiteLedger(text, namespace, ttl=ttl)


@attrs.frozen
class Journal:
    """A batch journal kept in a shared store rather than a JSONL file, so the batch can be
    resumed on another host: `send_many(pushes, journal=Journal("redis://...", "nightly"))`.

    Attributes:
        store: A `redis://`/`rediss://` URL, an SQLite file's path, or a
            [`Ledger`][insider_webpush.ledger.Ledger].
        name: The batch's name: its positions are keys under it, and under the client's base
            URL and API key (a staging run and a production run of one name never mix). A
            rerun must use the same name; a new batch a new one.
        ttl: Seconds each entry is kept, above 0 and at most a year (default 7 days).

    Raises:
        ValidationError: `name` or `ttl` breaks its rule.
    """

    store: str | os.PathLike[str] | Ledger
    name: str = attrs.field()
    ttl: float = attrs.field(default=DEFAULT_DEDUPE_TTL)

    @ttl.validator
    def _check_ttl(self, _: object, value: object) -> None:
        try:
            check_dedupe_ttl(value)
        except ValidationError as exc:
            raise ValidationError("journal.ttl", exc.message) from None

    @name.validator
    def _check_name(self, _: object, value: object) -> None:
        if not isinstance(value, str) or not value or _SEP in value or len(value) > 200:
            raise ValidationError(
                "journal.name", "must be a non-empty string of at most 200 characters"
            )

    def open(self, namespace: str = "") -> Ledger:
        """The ledger, namespaced by `namespace` (the client's: its base URL and API key)
        and the batch's name."""
        return open_ledger(self.store, f"batch:{namespace}:{self.name}", ttl=float(self.ttl))


# -- the JSONL batch journal ----------------------------------------------------------------

_HEADER: Final = {"journal": "insider-webpush batch", "version": 2}
_HASH_BYTES = 8  # 64 bits tell an edited push from the journaled one
# A journal grows by the pushes a batch pulls; a gap this long (that many pushes in a row
# that failed validation, so were never journaled) is a damaged line, not a batch.
_MAX_GAP = 1_000_000

# What the journal says of a push index, kept in a bytearray: one byte per push.
_ABSENT, _SENDING, _OK, _FAILED = 0, 1, 2, 3


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


def _hex(key: int) -> str:
    return f"{key:0{2 * _HASH_BYTES}x}"


class FileJournal:
    """The JSONL batch journal, a [`Ledger`][insider_webpush.ledger.Ledger] of positions.

    Its first line names the format; then, per push:

    ```json
    {"event":"sending","index":7,"hash":"<16 hex>","attempt":1}
    {"event":"done","index":7,"hash":"<16 hex>","attempts":1,"ok":true,"status":null,
     "campaign_id":1697300275,"ambiguous":false}
    ```

    A `sending` line is appended and flushed when a claim is taken at the wire, before the
    push's first byte; the `done` line is appended when it settles (a failure adds `error`,
    `message`, `retry_after` and, for a transport error, `stage`) and flushed with the next
    `sending` line, by a callback scheduled when it was written, or by the batch's `flush`
    before it hands that push's outcome to the caller, whichever comes first. One flush
    serves every `done` line of an event-loop iteration. A
    process killed between a `done` line and its flush loses it, and a rerun finds that
    push `sending`: ambiguous, not sent again (at most once holds; only the confirmation
    is lost, for an outcome the caller never received). Keys are positions (`"7"`). One
    batch at a time holds it (an exclusive `flock`; not on Windows), so a `sending` line
    found on opening is from a run that died: ambiguous. A last line torn by a crash is
    dropped; a damaged line elsewhere raises
    [`JournalError`][insider_webpush.errors.JournalError]. What earlier runs recorded is kept
    in flat arrays indexed by push (about 21 bytes a push). A flush hands the lines to the
    operating system, which keeps them when the process is killed; surviving power loss
    would need an fsync per line, which is not offered.

    Args:
        path: The journal file; made when missing.

    Raises:
        JournalError: Not a journal, damaged, or in use by another batch.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._hashes = array.array("Q")
        self._states = bytearray()
        self._attempts = array.array("I")
        self._campaign_ids = array.array("q")
        self._failures: dict[int, Failure] = {}
        self._flush_pending = False  # a flush of buffered `done` lines is scheduled
        self._flush_error: OSError | None = None  # a write to the file failed
        # Lines not yet handed to the OS, and the file's size with every line that was: the
        # lines are written with os.write on the file's descriptor (opened to append), so a
        # write that fails (a full disk) leaves nothing buffered to land later, and the line
        # it tore is cut off (see _write).
        self._pending: list[bytes] = []
        self._size = 0
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 - closed by aclose()
        self._fd = self._file.fileno()
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
        self._size = end_of_good
        # Positions from here on have no line from an earlier run (a fresh journal: all).
        self.extent = len(self._states)
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
                failure = Failure(
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

    extent: int
    """Positions at or past this one have no line from an earlier run: `entry` is None for
    them (a fresh journal's `extent` is 0)."""

    def entry(self, index: int) -> Entry | None:
        """The entry of the push at `index` (also what `get` returns, without an await)."""
        state = self._states[index] if index < len(self._states) else _ABSENT
        if state == _ABSENT:
            return None
        digest = _hex(self._hashes[index])
        attempts = self._attempts[index]
        if state == _OK:
            return Entry(State.DONE, digest, attempts, self._campaign_ids[index])
        if state == _SENDING:
            # One batch at a time holds the journal: a sending line is a run that died.
            failure = Failure(
                TransportError.__name__,
                f"no answer was journaled for attempt {attempts}: the batch stopped after it "
                "went on the wire, so the push may have gone out",
                None,
                None,
                True,
                Stage.SENT,
            )
            return Entry(State.SENDING, digest, attempts, failure=failure)
        failure = self._failures[index]
        state_now = State.AMBIGUOUS if failure.ambiguous else State.FAILED
        return Entry(state_now, digest, attempts, failure=failure)

    async def get(self, key: str) -> Entry | None:
        return self.entry(int(key))

    # writing

    def _write(self, data: bytes) -> None:
        """Hand `data`, after the lines waiting, to the OS now: survives the process being
        killed, not power loss. Raises the OSError of a failed write (then, and for every
        write after it)."""
        pending = self._pending
        if pending or self._flush_error is not None:
            if self._flush_error is not None:
                raise self._flush_error
            pending.append(data)
            data = b"".join(pending)
            pending.clear()
        # The descriptor, kept: -1 once closed, so a late write fails (EBADF) rather than
        # landing in whatever file reuses the number.
        fd = self._fd
        done = 0
        try:
            done = os.write(fd, data)  # all of it, but for a signal or a nearly full disk
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as exc:
            # The line the failure tore is cut off: a `sending` line that never reached the
            # file whole is a push never sent, and must not read as one that may have gone
            # out. The whole lines written before it stay: they can only be `done` lines
            # waiting (a `sending` line comes last, and is whole only if the write was), each
            # a push's true outcome, which the caller may already hold.
            self._flush_error = exc
            kept = data.rfind(b"\n", 0, done) + 1
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size + kept)
            self._size += kept
            raise
        self._size += done

    def flush(self) -> None:
        """Hand the `done` lines waiting to the OS now, if any (the batch calls this before
        it hands an outcome to the caller).

        Raises:
            OSError: This write failed, or an earlier one did (its lines never reached the
                file, and every write after it fails the same way).
        """
        if self._pending or self._flush_error is not None:
            self._write(b"")

    def _write_later(self, data: bytes) -> None:
        """Buffer a `done` line: handed to the OS by the next `sending` line's write, by a
        callback scheduled now, or by `flush` (the batch's, before it hands the push's
        outcome over), whichever comes first."""
        if self._flush_error is not None:
            raise self._flush_error
        self._pending.append(data)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush_later)

    def _flush_later(self) -> None:
        self._flush_pending = False
        if self._file.closed or not self._pending:
            return  # written by a `sending` line, or by closing
        with contextlib.suppress(OSError):  # e.g. a full disk: raised by the next write, or
            self.flush()  # by the batch's flush before it hands the next outcome over

    async def swap(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        return self.swap_now(key, entry, expected)

    def swap_now(self, key: str, entry: Entry, expected: Entry | None) -> Entry | None:
        """`swap` without an await: the journal writes at once (a
        [`Claim`][insider_webpush.ledger.Claim] uses this)."""
        # The flock makes this run the only writer: the compare always holds.
        index = int(key)
        digest = entry.digest
        if entry.state is State.SENDING:
            self.write_sending(index, digest, entry.attempts)
            return None
        failure = entry.failure
        campaign_id = entry.campaign_id
        if entry.state is State.DONE and failure is None and campaign_id is not None:
            self.write_done(index, digest, entry.attempts, campaign_id)
            return None
        self._write_later(
            _done_line(index, digest, entry.attempts, entry.state, campaign_id, failure)
        )
        return None

    def write_outcome(
        self,
        index: int,
        digest: str,
        attempts: int,
        result: LaunchResult | None,
        error: InsiderError | None,
    ) -> None:
        """Append the `done` line of the push at `index`: its `result`, or else its `error`;
        flushed within the loop iteration (see `write_done`)."""
        if result is not None:
            self.write_done(index, digest, attempts, result.campaign_id)
            return
        assert error is not None
        state = State.AMBIGUOUS if error.ambiguous else State.FAILED
        self._write_later(_done_line(index, digest, attempts, state, None, Failure.of(error)))

    # The two lines of every push, formatted directly: the same bytes json.dumps writes
    # (compact, in this key order) when every value is an int or an ASCII alphanumeric
    # string, so no escaping is needed; anything else goes through json.dumps. The digest is
    # checked as UTF-8 bytes: bytes.isalnum is ASCII only (a non-ASCII character's bytes are
    # not alphanumeric) and an order of magnitude cheaper than str.isalnum. A lone surrogate
    # cannot be encoded: b"" is not alphanumeric either, and json.dumps escapes it.

    def write_sending(self, index: int, digest: str, attempts: int) -> None:
        """Append and flush the `sending` line of the push at `index`."""
        try:
            raw = digest.encode()
        except UnicodeEncodeError:
            raw = b""
        if type(attempts) is int and raw.isalnum():
            data = b'{"event":"sending","index":%d,"hash":"%s","attempt":%d}\n' % (
                index,
                raw,
                attempts,
            )
        else:
            data = _line({"event": "sending", "index": index, "hash": digest, "attempt": attempts})
        self._write(data)

    def write_done(self, index: int, digest: str, attempts: int, campaign_id: int) -> None:
        """Append the `done` line of a success; flushed within the loop iteration."""
        try:
            raw = digest.encode()
        except UnicodeEncodeError:
            raw = b""
        if type(attempts) is int and type(campaign_id) is int and raw.isalnum():
            data = (
                b'{"event":"done","index":%d,"hash":"%s","attempts":%d,"ok":true,'
                b'"status":null,"campaign_id":%d,"ambiguous":false}\n'
                % (index, raw, attempts, campaign_id)
            )
        else:
            data = _done_line(index, digest, attempts, State.DONE, campaign_id, None)
        # A `done` line may wait for the end of the loop iteration: lost with the process
        # (SIGKILL between the write and the flush), the push reads as `sending` on a rerun,
        # so ambiguous and not sent again: never a second launch. A failure's line waits the
        # same way.
        self._write_later(data)

    async def aclose(self) -> None:
        try:
            if self._pending and self._flush_error is None and not self._file.closed:
                self.flush()  # the lines of the last outcomes
        finally:
            self._fd = -1
            self._file.close()  # also releases the lock


def _done_line(
    index: int,
    digest: str,
    attempts: int,
    state: State,
    campaign_id: int | None,
    failure: Failure | None,
) -> bytes:
    """A `done` line through json.dumps (the escaping any value may need)."""
    line = {
        "event": "done",
        "index": index,
        "hash": digest,
        "attempts": attempts,
        "ok": state is State.DONE,
        "status": failure.status if failure is not None else None,
        "campaign_id": campaign_id,
        "ambiguous": state is State.AMBIGUOUS,
    }
    if failure is not None:
        line["error"] = failure.error
        line["message"] = failure.message
        line["retry_after"] = failure.retry_after
        if failure.stage is not None:
            line["stage"] = failure.stage.value
    return _line(line)


def _line(line: dict[str, Any]) -> bytes:
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


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
