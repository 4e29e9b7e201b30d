"""One process at a time on a folder: a run being trained, a corpus being converted.

The lock is an advisory `flock` on FOLDER/.lock, which holds the owner's process id for the
message a second process prints. The kernel releases it when the owner dies, however it
dies, so a lock left by a killed process is simply taken over."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"


class FolderBusy(Exception):
    """Another process holds the folder's lock; the message names it."""


@contextmanager
def folder_lock(folder: Path, doing: str):
    """Hold FOLDER/.lock while the block runs; FolderBusy at once if another process does.
    `doing` says what the holder is doing to the folder ("training", "converting into")."""
    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise FolderBusy(f"{folder} is busy: process {owner} is {doing} it; wait for it "
                             f"to finish or stop it (kill {owner})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
