"""One process at a time on a folder: a run being trained, a corpus being converted.

The lock is an advisory `flock` on FOLDER/.lock, which holds the owner's process id for the
message a second process prints. The kernel releases it when the owner dies, however it
dies, so a lock left by a killed process is simply taken over. (Children forked by the owner
share its flock until they exit: convert's workers, which exit within a moment of a killed
parent, so a lock whose named owner is dead is waited for briefly.)"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
ORPHAN_WAIT = 3.0  # seconds


class FolderBusy(Exception):
    """Another process holds the folder's lock; the message names it."""


@contextmanager
def folder_lock(folder: Path, doing: str):
    """Hold FOLDER/.lock while the block runs; FolderBusy at once if another process does.
    `doing` says what the holder is doing to the folder ("training", "converting into")."""
    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + ORPHAN_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            if not alive(owner) and time.monotonic() < deadline:
                time.sleep(0.1)  # the owner is dead; its forked children are on their way out
                continue
            raise FolderBusy(f"{folder} is busy: process {owner} is {doing} it; wait for it "
                             f"to finish or stop it (kill {owner})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def alive(pid: str) -> bool:
    """Whether process `pid` (a string, as a lock file holds it) is running."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
