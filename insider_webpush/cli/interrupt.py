"""Ctrl-C and SIGTERM during a batch: stop taking pushes, finish those on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from .output import Output

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt:
    """While active, the first Ctrl-C or SIGTERM (what ``kill``, systemd and Kubernetes send)
    sets :attr:`stop`: the batch starts no new request and lets the ones on the wire finish,
    so that none is cut off and left ambiguous (pushes waiting for the quota end "not sent");
    a second one cancels at once.
    """

    def __init__(self, out: Output) -> None:
        self._out = out
        self.requested: str | None = None  # the signal's name, once one came
        self.stop = asyncio.Event()  # the batch's `stop`: set by the first signal
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> GracefulInterrupt:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C cancels at once
                loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        if self.requested is not None:
            assert self._task is not None
            self._task.cancel()
            return
        self.requested = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.stop.set()
        self._out.echo(
            f"stopping ({self.requested}): finishing the pushes already on the wire, sending "
            "no more (again to abandon them; any on the wire would then be ambiguous)",
            err=True,
        )
