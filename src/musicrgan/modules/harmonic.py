"""Harmonic oscillators (the harmonic half of DDSP's harmonic-plus-noise synthesizer, Engel et
al. 2020): per frame, each voice's controls set a fundamental, a loudness and how that
loudness spreads over the harmonics; the layer sounds them as sums of sines, phase-continuous
across frames. A network that has to draw a sustained bass line sample by sample can play it
here with a few numbers per frame, and the result is tonal by construction."""

from __future__ import annotations

import math

import numpy as np

from .. import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


def controls_per_voice(harmonics: int) -> int:
    """Control values per voice and frame: fundamental, loudness, one per harmonic."""
    return 2 + harmonics


def _between_frames(values, frame: int):
    """(batch, frames, ...) per-frame values → (batch, frames, frame, ...) per sample: linear
    from each frame's value to the next one's (the last frame holds), so no control jumps
    at a frame's edge (a jump in loudness would click)."""
    following = ops.concatenate([values[:, 1:], values[:, -1:]], axis=1)
    shape = (1, 1, frame) + (1,) * (len(values.shape) - 2)
    ramp = ops.reshape(ops.arange(frame, dtype="float32") / frame, shape)
    return ops.expand_dims(values, 2) * (1.0 - ramp) + ops.expand_dims(following, 2) * ramp


@keras.saving.register_keras_serializable(package="musicrgan")
class HarmonicOscillators(keras.layers.Layer):
    """(batch, frames, voices * (2 + harmonics)) controls → (batch, frames * frame) audio.

    Per voice and frame: the fundamental (a sigmoid over `lowest`..`highest` Hz on a log
    scale), the loudness (DDSP's exponentiated sigmoid, 0..1, biased to start silent) and a softmax over the
    harmonics; harmonics above the Nyquist frequency are silenced. The phase is accumulated
    per frame and wrapped, then per sample within the frame, so float32 keeps it exact over
    minutes of audio."""

    def __init__(self, frame: int, rate: int, harmonics: int, voices: int = 1,
                 lowest: float = 20.0, highest: float = 1000.0, **kwargs):
        super().__init__(**kwargs)
        self.frame, self.rate, self.harmonics, self.voices = frame, rate, harmonics, voices
        self.lowest, self.highest = lowest, highest
        self.built = True  # no weights

    def call(self, controls):
        batch, frames = ops.shape(controls)[0], ops.shape(controls)[1]
        controls = ops.reshape(controls, (batch, frames, self.voices,
                                          controls_per_voice(self.harmonics)))
        f0 = self.lowest * (self.highest / self.lowest) ** ops.sigmoid(controls[..., 0])
        # DDSP's initial bias of -5: a voice starts silent (sigmoid(-5) ** 2.3 ~ 1e-5) and
        # is brought in where training finds a use for it; starting at 0.2, it droned over
        # the drums and the pulse never came (docs/compare.md)
        loudness = ops.power(ops.sigmoid(controls[..., 1] - 5.0), math.log(10.0))
        numbers = ops.arange(1, self.harmonics + 1, dtype="float32")
        audible = ops.cast(f0[..., None] * numbers < self.rate / 2, "float32")
        spread = ops.softmax(controls[..., 2:], axis=-1) * audible
        spread = spread / (ops.sum(spread, axis=-1, keepdims=True) + 1e-7)
        amplitudes = loudness[..., None] * spread            # (batch, frames, voices, harmonics)

        # phase of the fundamental: whole frames accumulated and wrapped, then the samples
        step = 2.0 * np.pi * _between_frames(f0, self.frame) / self.rate  # (b, f, frame, v)
        within = ops.cumsum(step, axis=2) - step
        per_frame = ops.sum(step, axis=2)                                  # (b, f, v)
        start = ops.cumsum(per_frame, axis=1) - per_frame
        start = start - 2.0 * np.pi * ops.floor(start / (2.0 * np.pi))
        phase = ops.expand_dims(start, 2) + within                        # (b, f, frame, v)

        sines = ops.sin(phase[..., None] * numbers)          # (b, f, frame, v, harmonics)
        audio = ops.sum(sines * _between_frames(amplitudes, self.frame), axis=(3, 4))
        return ops.reshape(audio, (batch, frames * self.frame))

    def get_config(self):
        return {**super().get_config(), "frame": self.frame, "rate": self.rate,
                "harmonics": self.harmonics, "voices": self.voices,
                "lowest": self.lowest, "highest": self.highest}
