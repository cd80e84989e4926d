"""Progress lines of the commands: one stage per line on stderr, with the time since the command started."""

from __future__ import annotations

import time

import typer


class Progress:
    """Stage lines on stderr with elapsed time, so long work shows what it is doing; silent when ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            typer.echo(f"[{time.perf_counter() - self.start:6.2f} s] {message}", err=True)
