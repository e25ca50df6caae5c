"""Lock files: one writer per store being simulated and per run directory being trained.

The lock of a folder ``X`` is the file ``X.lock`` beside it (so replacing ``X`` never
removes its lock), created atomically (``O_CREAT | O_EXCL``) and holding JSON with the
holder's pid, host, start time and command. A second writer is refused with one line
naming the holder, or waits for the lock with ``wait=true``. A lock whose holder is no
longer alive on the same host is stale: it is taken over, saying so. Under dask the
client process holds the lock; under torchrun, rank 0.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from .errors import DynlabError

__all__ = ["LockedError", "FolderLock", "lock_path"]


class LockedError(DynlabError):
    """Another live process holds the lock."""


def lock_path(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    return folder.with_name(folder.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True


class FolderLock:
    """Context manager holding the lock of ``folder`` (see the module docstring).

    Args:
        folder: the store or run directory to lock.
        what: a word for messages ("store", "run directory").
        wait: wait for a live holder instead of refusing.
        poll: seconds between checks while waiting.
        log: where a stale-lock take-over or a wait is reported.
    """

    def __init__(self, folder: str | Path, *, what: str = "folder", wait: bool = False, poll: float = 0.5,
                 log: Callable[[str], None] | None = None):
        if not isinstance(wait, bool):
            raise ValueError(f"wait must be true or false, got {wait!r}")
        if not (isinstance(poll, (int, float)) and poll > 0):
            raise ValueError(f"poll must be a number > 0, got {poll!r}")
        self.folder = Path(folder).expanduser()
        self.path = lock_path(self.folder)
        self.what = what
        self.wait = wait
        self.poll = float(poll)
        self.log = log or (lambda msg: print(f"dynlab: {msg}", file=sys.stderr))
        self.held = False

    def _record(self) -> str:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "command": " ".join(sys.argv[:3])})

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(self._record() + "\n")
        return True

    def holder(self) -> dict | None:
        """The current holder's record, or None if the lock is free (or unreadable)."""
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        said_wait = False
        while not self._try_create():
            info = self.holder()
            if info is None:  # a holder is writing its record right now, or a torn file
                time.sleep(min(self.poll, 0.05))
                info = self.holder()
                if info is None:
                    self.log(f"taking over the unreadable lock {self.path}")
                    self.path.unlink(missing_ok=True)
                    continue
            same_host = info.get("host") == socket.gethostname()
            pid = int(info.get("pid", -1))
            if same_host and pid == os.getpid():
                raise LockedError(f"{self.what} {str(self.folder)!r} is already locked by this process")
            if same_host and not _alive(pid):
                self.log(f"taking over the stale lock of {self.what} {self.folder} (holder pid {pid} on "
                         f"{info.get('host')}, started {info.get('started')}, is no longer running)")
                self.path.unlink(missing_ok=True)
                continue
            holder = f"pid {pid} on {info.get('host')} since {info.get('started')}"
            if not self.wait:
                raise LockedError(f"{self.what} {str(self.folder)!r} is being written by {holder} "
                                  f"(lock {self.path}); wait for it to finish or pass wait=true")
            if not said_wait:
                self.log(f"waiting for {holder} to release {self.what} {self.folder}")
                said_wait = True
            time.sleep(self.poll)
        self.held = True
        return self

    def release(self) -> None:
        if self.held:
            info = self.holder()
            if info is not None and int(info.get("pid", -1)) == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
