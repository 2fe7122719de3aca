"""A raw-socket HTTP/1.1 server on loopback for wire-fault tests.

Not aiohttp's server: plain non-blocking sockets driven by the running event loop, so a test
decides, byte for byte, how far the server reads a request before it answers, stalls or
hangs up, and the server records exactly what it consumed. It reads with ``MSG_PEEK`` and
then takes only the bytes it means to take: "read the headers, then close" leaves the body
unread in the kernel, as a real server that hangs up early would.

Use it as an async context manager::

    async with RawServer([status(429, headers={"Retry-After": "0.05"}), status(200)]) as server:
        ...  # aim a client at server.url
    assert [r.received for r in server.requests] == [Received.FULL, Received.FULL]

``plan`` is a behaviour or a list of them, consumed one per request (the last one repeats):

- :func:`close_before_read`: close the connection at once, reading nothing (checked when the
  connection is accepted, and before a keep-alive connection's next request).
- :func:`close_unread`: wait until the request's first bytes are in the socket, then close
  without reading any of them (the kernel answers the client with a reset).
- :func:`read_headers_close`: read the request's headers, then close without reading the body.
- :func:`read_body_close`: read the whole request (headers and ``Content-Length`` body), then
  close without answering.
- :func:`answer_late`: read the whole request, wait, then answer.
- :func:`status`: read the whole request and answer a status with a JSON body, optional
  headers, keep-alive or not.

``listen`` picks what is on the port: ``"serve"`` (the plan), ``"refuse"`` (nothing: a port
bound and closed again, so a connection is refused) or ``"no_accept"`` (a listening socket with
backlog 0 whose accept queue is filled with raw client sockets and never accepted, so a
client's handshake never finishes: Linux drops its SYN). ``idle_close`` closes a keep-alive
connection idle for that many seconds after an answer, as nginx's ``keepalive_timeout`` does
(a new connection waits up to ``first_request_timeout`` for its first request), and
:meth:`RawServer.hang_up_idle` closes every connection waiting for a request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import http
import json
import select
import socket
import struct
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "OK_BODY",
    "Behaviour",
    "ConnectionRecord",
    "Listen",
    "RawServer",
    "Received",
    "RequestRecord",
    "answer_late",
    "close_before_read",
    "close_unread",
    "read_body_close",
    "read_headers_close",
    "status",
]

OK_BODY: Mapping[str, Any] = {"success": True, "campaign_id": 1697300275}
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024

Kind = Literal[
    "close_before_read",
    "close_unread",
    "read_headers_close",
    "read_body_close",
    "answer_late",
    "status",
]
Listen = Literal["serve", "refuse", "no_accept"]


class Received(enum.Enum):
    """How much of one request the server read."""

    NOTHING = "nothing"
    PARTIAL = "partial"  # some bytes, not all the headers
    HEADERS = "headers"  # all the headers, not all the body
    FULL = "full"  # the headers and the whole Content-Length body


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    kind: Kind
    status: int = 200
    body: Any = None  # JSON, or bytes sent as they are
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # answer_late: seconds between reading the request and answering
    keep_alive: bool = True


def close_before_read() -> Behaviour:
    return Behaviour("close_before_read")


def close_unread() -> Behaviour:
    return Behaviour("close_unread")


def read_headers_close() -> Behaviour:
    return Behaviour("read_headers_close")


def read_body_close() -> Behaviour:
    return Behaviour("read_body_close")


def answer_late(seconds: float, code: int = 200, body: Any = OK_BODY) -> Behaviour:
    return Behaviour("answer_late", status=code, body=body, delay=seconds)


def status(
    code: int,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    keep_alive: bool = True,
) -> Behaviour:
    """Answer ``code``; the body defaults to OK_BODY for a 2xx, else ``{"message": ...}``."""
    if body is None:
        body = OK_BODY if 200 <= code < 300 else {"message": f"status {code}"}
    return Behaviour(
        "status",
        status=code,
        body=body,
        headers=tuple((headers or {}).items()),
        keep_alive=keep_alive,
    )


@dataclasses.dataclass
class RequestRecord:
    """One request as the server saw it."""

    connection: int
    behaviour: Kind
    received: Received = Received.NOTHING
    method: str | None = None
    target: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)  # lower-case names
    body: bytes = b""
    json: Any = None  # the decoded body, once received in full
    answered: int | None = None  # the status sent back, if any


@dataclasses.dataclass
class ConnectionRecord:
    """One accepted connection."""

    number: int
    requests: int = 0
    closed: str = ""  # client, idle, behaviour, hung up, keep-alive off, reset or stopped
    unread: bytes = b""  # what was waiting in the socket, never read, when the server closed it


class _Closed(Exception):
    """The peer closed or reset the connection."""


class _HungUp(Exception):
    """``hang_up_idle`` closed the connection while it waited for a request."""


class RawServer:
    """A loopback HTTP/1.1 server made of plain sockets; see the module docstring."""

    def __init__(
        self,
        plan: Behaviour | Sequence[Behaviour] = (),
        *,
        listen: Listen = "serve",
        idle_close: float | None = None,
        first_request_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        if listen not in ("serve", "refuse", "no_accept"):
            raise ValueError(f"listen must be serve, refuse or no_accept, not {listen!r}")
        self.listen: Listen = listen
        self.idle_close = idle_close
        self.first_request_timeout = first_request_timeout
        self.read_timeout = read_timeout
        self.requests: list[RequestRecord] = []
        self.connections: list[ConnectionRecord] = []
        self._plan: list[Behaviour] = []
        self.set_plan(plan if plan else status(200))
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []
        self._sockets: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: dict[socket.socket, tuple[ConnectionRecord, asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # -- the plan and what was seen ------------------------------------------------------

    def set_plan(self, plan: Behaviour | Sequence[Behaviour]) -> None:
        """Behaviours for the next requests, one each; the last one repeats."""
        self._plan = [plan] if isinstance(plan, Behaviour) else list(plan)
        if not self._plan:
            raise ValueError("the plan needs at least one behaviour")

    def _peek(self) -> Behaviour:
        return self._plan[0]

    def _take(self) -> Behaviour:
        return self._plan.pop(0) if len(self._plan) > 1 else self._plan[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full(self) -> list[RequestRecord]:
        """The requests read in full."""
        return [r for r in self.requests if r.received is Received.FULL]

    def received_json(self) -> list[Any]:
        """The decoded bodies of the requests read in full, in order."""
        return [r.json for r in self.full()]

    # -- life cycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            if self.listen == "refuse":
                sock.close()  # nothing listens on the port now: connections are refused
                return
            if self.listen == "no_accept":
                sock.listen(0)
                self._listener = sock
                self._fill_backlog()
                return
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            self._close_fillers()
            raise
        self._listener = sock
        self._loop.add_reader(sock.fileno(), self._accept)

    def _fill_backlog(self) -> None:
        """Fill the accept queue of the backlog-0 listener until a handshake stalls."""
        assert self._listener is not None
        address = self._listener.getsockname()
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                return  # its SYN was dropped: the queue is full, the next client stalls too
            error = filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, "filling the accept queue failed")
        raise RuntimeError("the accept queue of a backlog-0 listener never filled up")

    def _close_fillers(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            if self.listen == "serve" and self._loop is not None:
                self._loop.remove_reader(listener.fileno())
            listener.close()
        self._close_fillers()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in list(self._sockets):
            self._close(sock, None, "stopped")

    # -- serving -------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        assert self._loop is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            self._sockets.add(sock)
            record = ConnectionRecord(number=len(self.connections))
            self.connections.append(record)
            if self._peek().kind == "close_before_read":
                # At once, in the accept callback: not a byte read.
                self._take()
                self.requests.append(RequestRecord(record.number, "close_before_read"))
                record.requests += 1
                self._close(sock, record, "behaviour")
                continue
            task = self._loop.create_task(self._serve(sock, record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _close(self, sock: socket.socket, record: ConnectionRecord | None, why: str) -> None:
        if sock not in self._sockets:
            return
        self._sockets.discard(sock)
        if record is not None:
            if not record.closed:
                record.closed = why
            with contextlib.suppress(OSError):
                record.unread = sock.recv(_MAX_HEAD, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        sock.close()

    async def _readable(
        self, sock: socket.socket, seconds: float | None, idle: ConnectionRecord | None = None
    ) -> bool:
        """Wait up to ``seconds`` (None: for ever) until ``sock`` has data or EOF, reading none
        of it; False when the time ran out.

        ``idle``: the connection waits for its next request, so :meth:`hang_up_idle` may
        close it (then this raises ``_HungUp``).
        """
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        if idle is not None:
            self._idle[sock] = (idle, ready)
        try:
            async with asyncio.timeout(seconds):
                await ready
        except TimeoutError:
            return False
        finally:
            # A hang-up already removed the reader (and the fd may be reused since).
            if idle is None or self._idle.pop(sock, None) is not None:
                loop.remove_reader(fd)
        return True

    def hang_up_idle(self, *, reset: bool = False) -> int:
        """Close, now, every connection waiting for its next request; return how many.

        Synchronous, so a test can put the server's FIN (``reset``: an RST, as a server
        aborting the connection sends) at an exact point of the client's progress (e.g. with
        ``loop.call_soon`` from a hook).
        """
        loop = asyncio.get_running_loop()
        hung_up = 0
        for sock, (record, ready) in list(self._idle.items()):
            del self._idle[sock]
            loop.remove_reader(sock.fileno())
            if not ready.done():
                ready.set_exception(_HungUp())
            if reset:  # SO_LINGER 0: close() sends an RST, not a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._close(sock, record, "hung up")
            hung_up += 1
        return hung_up

    async def _serve(self, sock: socket.socket, connection: ConnectionRecord) -> None:
        why = "behaviour"
        try:
            first = True
            while True:
                wait = self.first_request_timeout if first else self.idle_close
                if not await self._readable(sock, wait, idle=connection):
                    why = "idle"
                    return
                if sock not in self._sockets:
                    return  # hung up after the request's first bytes came
                waiting = _peek(sock)
                if waiting is None:
                    continue  # a spurious wake-up
                if not waiting:
                    why = "client"
                    return
                behaviour = self._take()
                record = RequestRecord(connection.number, behaviour.kind)
                self.requests.append(record)
                connection.requests += 1
                if behaviour.kind in ("close_before_read", "close_unread"):
                    return
                length = await self._read_head(sock, record)
                if behaviour.kind == "read_headers_close":
                    return
                await self._read_body(sock, record, length)
                if behaviour.kind == "read_body_close":
                    return
                if behaviour.kind == "answer_late":
                    await asyncio.sleep(behaviour.delay)
                await self._answer(sock, behaviour)
                record.answered = behaviour.status
                if not behaviour.keep_alive:
                    why = "keep-alive off"
                    return
                first = False
        except asyncio.CancelledError:
            why = "stopped"
            raise
        except _HungUp:
            why = "hung up"
        except _Closed:
            why = "client"
        except OSError:
            why = "reset"
        finally:
            self._close(sock, connection, why)

    async def _read_head(self, sock: socket.socket, record: RequestRecord) -> int:
        """Read exactly the request line and headers; return the Content-Length."""
        head = b""
        while True:
            if not await self._readable(sock, self.read_timeout):
                raise _Closed("no complete headers in time")
            peeked = _peek(sock, _MAX_HEAD)
            if peeked is None:
                continue
            if not peeked:
                raise _Closed("EOF inside the headers")
            window = head[-3:] + peeked
            end = window.find(_HEAD_END)
            take = len(peeked) if end < 0 else end + len(_HEAD_END) - len(head[-3:])
            head += _recv(sock, take) or b""  # peeked, so there: recv will not block
            record.received = Received.PARTIAL
            if end >= 0:
                break
            if len(head) > _MAX_HEAD:
                raise _Closed("headers too long")
        lines = head[: -len(_HEAD_END)].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        record.method, record.target = method, target
        for line in lines[1:]:
            name, _, value = line.partition(":")
            record.headers[name.strip().lower()] = value.strip()
        record.received = Received.HEADERS
        return int(record.headers.get("content-length", "0"))

    async def _read_body(self, sock: socket.socket, record: RequestRecord, length: int) -> None:
        body = b""
        while len(body) < length:
            if not await self._readable(sock, self.read_timeout):
                raise _Closed("no complete body in time")
            chunk = _recv(sock, min(length - len(body), 65536))
            if chunk is None:
                continue
            if not chunk:
                raise _Closed("EOF inside the body")
            body += chunk
            record.body = body
        record.body = body
        record.received = Received.FULL
        try:
            record.json = json.loads(body) if body else None
        except ValueError:
            record.json = None

    async def _answer(self, sock: socket.socket, behaviour: Behaviour) -> None:
        body = behaviour.body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            reason = http.HTTPStatus(behaviour.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {behaviour.status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            f"Connection: {'keep-alive' if behaviour.keep_alive else 'close'}",
            *(f"{name}: {value}" for name, value in behaviour.headers),
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
        await asyncio.get_running_loop().sock_sendall(sock, data)


def _peek(sock: socket.socket, size: int = 1) -> bytes | None:
    """Bytes waiting on ``sock`` without taking them; b"" at EOF, None if there are none."""
    try:
        return sock.recv(size, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionError as exc:
        raise _Closed(str(exc)) from None


def _recv(sock: socket.socket, size: int) -> bytes | None:
    try:
        return sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionError as exc:
        raise _Closed(str(exc)) from None
