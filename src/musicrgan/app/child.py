"""One studio job: the musicrgan command line in a process that dies with the server.

`python -m musicrgan.app.child SERVER_PID ARGS...` asks Linux for SIGKILL when the server
goes (the parent-death signal), so a killed server leaves no orphaned job holding a run's
lock; a run killed this way keeps its last complete epoch, like any kill -9."""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> int:
    server = int(sys.argv[1])
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server:  # the server went before the signal was asked for
            return 1
    from ..cli import main as cli_main
    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
