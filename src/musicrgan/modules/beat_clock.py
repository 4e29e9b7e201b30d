"""The beat clock: where in the bar, beat and 16th note each frame of a window falls, as
sines and cosines a network can read (lstm-gan's generator and discriminator hear it)."""

from __future__ import annotations

import numpy as np

from .. import import_tensorflow

import_tensorflow()
from keras import ops  # noqa: E402


CLOCK_FEATURES = 6


def beat_clock(beats, steps, hop, centre, rate):
    """(batch, 2) [tempo in BPM, beat position at the window's first sample] → (batch,
    steps, 6): sin and cos of the phase of the bar (4 beats), the beat and the 16th note at
    sample `centre + i * hop` of the window, for i < steps."""
    times = (ops.cast(ops.arange(steps), "float32") * hop + centre) / rate
    position = beats[:, 1:2] + times[None, :] * beats[:, 0:1] / 60.0
    angles = 2.0 * np.pi * ops.stack([position / 4.0, position, position * 4.0], axis=-1)
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
