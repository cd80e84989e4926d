"""Writing output files atomically, with the user's permissions, and leaving no debris.

Every file vocalmix writes goes through :func:`write_atomic`: the content goes to a
hidden temporary file in the destination folder, which is then renamed over the
destination, so a reader never sees half a file and a failed run leaves the old file
(or nothing). The temporary file

- is created with mode 0666 minus the process umask, like any file a program creates
  (``tempfile.mkstemp`` would make it 0600, and the rename would keep that);
- has a unique name, ``.<name>.vocalmix-<pid>-<random>.part``, so two runs writing the
  same output never share a temporary file, and leftovers are recognisable as ours;
- is removed when the write fails or is interrupted (Ctrl-C, SIGTERM).

A SIGKILL cannot be caught, so the first write into a folder also removes our
temporary files there that belong to runs which are no longer running and are older
than this one (:func:`remove_stale_parts`).

Two options cover the writers that need more than a replacing write: ``replace=False``
publishes the finished file under a name that must not exist yet (a hard link, so an
existing file is never replaced: the listening test's submissions), and ``durable=True``
flushes the file to the disk before it gets its name (data a person typed in).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Union

log = logging.getLogger("vocalmix")

PART_SUFFIX = ".part"
_PART_RE = re.compile(r"^\..+\.vocalmix-(\d+)-[0-9a-f]{12}\.part$")
_RUN_STARTED = time.time()
_swept: set[str] = set()

Content = Union[str, bytes, Callable[[Path], None]]


def part_path(path: Path) -> Path:
    """A new, unique temporary name next to ``path``."""
    return path.with_name(f".{path.name}.vocalmix-{os.getpid()}-{secrets.token_hex(6)}{PART_SUFFIX}")


def write_atomic(
    path: str | os.PathLike,
    content: Content,
    executable: bool = False,
    *,
    replace: bool = True,
    durable: bool = False,
) -> Path:
    """Write ``content`` to ``path`` atomically; returns ``path``.

    ``content`` is text (written as UTF-8), bytes, or a function that writes the file
    whose path it is given (for writers such as soundfile or torch.save that open
    the file themselves). ``executable`` adds execute permission where the umask allows read.
    With ``replace=False`` an existing ``path`` is left as it is and :class:`FileExistsError`
    raised; ``durable=True`` fsyncs the file before it appears under ``path``.
    """
    path = Path(path)
    remove_stale_parts(path.parent)
    tmp = part_path(path)
    # O_EXCL with mode 0666: the kernel applies the umask, exactly as for any new file.
    mode = 0o777 if executable else 0o666
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if callable(content):
            os.close(fd)
            fd = -1
            content(tmp)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as f:
                fd = -1
                f.write(data)
        if durable:
            _fsync(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError if the name is taken; the temporary name goes below
            tmp.unlink()
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Remove our temporary files in ``folder`` left by runs that were killed; once per folder and process.

    A file is stale when it is older than this run and the process that made it is
    gone. Temporary files of runs still going (same folder, started earlier) are kept.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _PART_RE.match(entry.name)
        if not match:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= _RUN_STARTED or _running(int(match.group(1))):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted run", folder, len(removed))
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier file of ours with this pid can only be from a killed run
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True
