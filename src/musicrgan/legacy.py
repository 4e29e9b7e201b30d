"""Shared by the original projects' scripts (convert_audio.py, train_model.py,
make_music.py), which keep their positional arguments and map them onto the new CLI."""

from __future__ import annotations

import sys


def usage_error(script: str, message: str, usage: str | None = None) -> int:
    """Print the usage line (if given) and one error line; return exit status 2."""
    if usage:
        print(usage, file=sys.stderr)
    print(f"{script}: error: {message}", file=sys.stderr)
    return 2
