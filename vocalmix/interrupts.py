"""Ctrl-C and SIGTERM stop a run the same way: cleanly, with one line and the shell's exit code.

SIGTERM is what ``timeout``, systemd and ``docker stop`` send. Python's default for it is
to die on the spot, skipping every ``finally`` and leaving temporary files behind; here it
raises :class:`Terminated` (a ``KeyboardInterrupt``) instead, so the clean-up that runs for
Ctrl-C (temporary files of :func:`vocalmix.files.write_atomic`, worker pools) runs for it
too. A second signal while cleaning up gets the default action: a user who insists wins.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Optional

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled exactly like Ctrl-C."""


@dataclass
class Caught:
    signum: Optional[int] = None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    @property
    def message(self) -> str:
        return "vocalmix: terminated" if self.signum == signal.SIGTERM else "vocalmix: interrupted"


@contextmanager
def signals_as_interrupts() -> Iterator[Caught]:
    """Within the block, SIGINT and SIGTERM raise ``KeyboardInterrupt``/:class:`Terminated`; yields what arrived."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught  # only the main thread may set handlers; callers there keep their own
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        caught.signum = signum
        for s in HANDLED:
            signal.signal(s, signal.SIG_DFL)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, handler)
    try:
        yield caught
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
