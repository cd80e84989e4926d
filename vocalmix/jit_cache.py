"""Where numba keeps the compiled effect kernels: the user's cache folder, never the package.

numba's default is a ``__pycache__`` next to the source, i.e. inside site-packages, where
``pip uninstall`` leaves it behind (and a leftover ``vocalmix`` folder then shadows another
install). numba reads ``NUMBA_CACHE_DIR`` once, when it is first imported, so
:func:`configure` runs from ``vocalmix/__init__.py``, before any module that compiles a
kernel. Without a writable cache folder (no home, a read-only home, a system account) the
kernels are compiled into a private temporary folder that is deleted at exit: everything
works, only the compiled code is not kept between runs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

APP_NAME = "vocalmix"
NOTE_PREFIX = "vocalmix: note:"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vocalmix``, else ``~/.cache/vocalmix`` (the XDG base-directory rule)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / APP_NAME


def numba_cache_dir() -> Path:
    return user_cache_dir() / "numba"


def _writable_dir(path: Path) -> str | None:
    """None if ``path`` exists (or was created) and takes a new file, else the reason it does not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # The same probe numba makes before it trusts a cache folder.
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def configure() -> None:
    """Point numba at the user cache folder, or at a throw-away folder when that is not writable.

    A ``NUMBA_CACHE_DIR`` already in the environment wins (the user's choice, or the parent
    process's when this is a worker).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    wanted = numba_cache_dir()
    problem = _writable_dir(wanted)
    if problem is None:
        os.environ["NUMBA_CACHE_DIR"] = str(wanted)
        return
    try:
        scratch = tempfile.mkdtemp(prefix="vocalmix-jit-")
    except OSError:
        # Nothing writable at all: leave numba to its own search (it refuses to cache with an error).
        scratch = None
    if scratch is not None:
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        os.environ["NUMBA_CACHE_DIR"] = scratch
    # Printed directly: this runs at import, before the CLI has set up logging.
    print(
        f"{NOTE_PREFIX} cache folder {wanted} is not writable ({problem}); compiled kernels are "
        "not kept between runs (set XDG_CACHE_HOME to a writable folder to keep them)",
        file=sys.stderr,
    )


@contextlib.contextmanager
def compile_notice(say: Callable[[str], None], package: str = APP_NAME) -> Iterator[None]:
    """While active, the first kernel of ``package`` that numba compiles (none of its cache held it) is told
    once through ``say``: a first run after installing or updating compiles every kernel, seconds of CPU
    that later runs spend loading them instead, and a silent pause that long looks like a hang.

    numba announces each compilation as a ``numba:compile`` event (cache hits are not compilations);
    kernels of other packages, and numba's own helpers compiled inside ours, are not told.
    """
    from numba.core import event

    told = False

    class _FirstCompile(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            nonlocal told
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if told or not (module == package or module.startswith(package + ".")):
                return
            told = True
            where = os.environ.get("NUMBA_CACHE_DIR") or "numba's cache"
            say(f"compiling the effect kernels, once for this installation (later runs load them from {where})")

        def on_end(self, ev: event.Event) -> None:
            pass

    with event.install_listener("numba:compile", _FirstCompile()):
        yield
