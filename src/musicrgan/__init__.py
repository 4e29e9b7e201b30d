"""musicrgan: train neural music generators on your own audio and generate new music."""

import os as _os

# Users read our output, not TensorFlow's start-up log. Setting TF_ENABLE_ONEDNN_OPTS
# explicitly (to its default) is what silences the oneDNN notice printed at import.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
