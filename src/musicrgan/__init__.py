"""musicrgan: train neural music generators on your own audio and generate new music."""

import os as _os
import sys as _sys

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"


def import_tensorflow():
    """Import TensorFlow (and Keras) with its start-up log out of the user's terminal.

    TF 2.21 writes absl and oneDNN notices from C++ straight to file descriptor 2 while it
    loads, whatever TF_CPP_MIN_LOG_LEVEL says, so stderr is pointed at /dev/null for the
    import alone. Import errors are Python exceptions and still surface.
    """
    if "tensorflow" in _sys.modules and "keras" in _sys.modules:
        return _sys.modules["tensorflow"]
    _sys.stderr.flush()
    saved = _os.dup(2)
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        import tensorflow
        import keras  # noqa: F401
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)
    return tensorflow
