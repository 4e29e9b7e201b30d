"""Features shared by the model families, in keras.ops so they run inside tf.data maps,
models and compiled generation loops alike: mu-law companding, FFT blocks, and the drift
filter that keeps a decoder's audio free of DC."""

from __future__ import annotations

import math

import numpy as np

from .. import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


def mu_law_encode(x, classes: int = 256):
    """[-1, 1] floats → integer classes 0..classes-1 (8-bit mu-law for 256)."""
    mu = classes - 1
    x = ops.clip(x, -1.0, 1.0)
    y = ops.sign(x) * ops.log1p(mu * ops.abs(x)) / math.log1p(mu)
    return ops.cast(ops.floor((y + 1.0) / 2.0 * mu + 0.5), "int32")


def mu_law_decode(k, classes: int = 256):
    """Integer classes → [-1, 1] floats (the inverse of mu_law_encode, up to quantization)."""
    mu = classes - 1
    y = 2.0 * ops.cast(k, "float32") / mu - 1.0
    return ops.sign(y) * (ops.power(1.0 + mu, ops.abs(y)) - 1.0) / mu


def frame(x, block: int, hop: int):
    """(batch, samples) → (batch, frames, block), frames `hop` apart. (tf.signal: keras.ops
    has no framing op that takes a length known only at run time.)"""
    return tf.signal.frame(x, block, hop, axis=-1)


def analysis_window(block: int, overlap: bool):
    """sqrt-Hann for 50 % overlap: analysis × synthesis windows sum to one (perfect OLA)."""
    if not overlap:
        return np.ones(block, np.float32)
    return np.sqrt(np.hanning(block + 1)[:-1]).astype(np.float32)


def fft_features(frames, block: int):
    """(..., block) waveform frames → (..., block + 2) = [real, imag] of the rFFT, scaled to
    about unit size so one learning rate suits every block size."""
    real, imag = ops.rfft(frames)
    return ops.concatenate([real, imag], axis=-1) / math.sqrt(block)


def inverse_fft_features(features, block: int):
    half = block // 2 + 1
    real, imag = features[..., :half], features[..., half:]
    return ops.irfft((real, imag), fft_length=block) * math.sqrt(block)


def overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """(batch, frames, block) → (batch, samples), summing frames placed `hop` apart."""
    batch, n, block = frames.shape
    out = np.zeros((batch, (n - 1) * hop + block), np.float32)
    for i in range(n):
        out[:, i * hop:i * hop + block] += frames[:, i]
    return out


def remove_drift(audio, width: int):
    """(batch, samples) minus its moving average over `width` samples, taken twice (a
    triangular window): a high-pass that removes DC and sub-audio drift (-3 dB near
    0.3 * rate / width; 19 Hz for 512 samples at 16 kHz) and leaves a kick's fundamental
    (50 Hz: -0.4 dB). The running sums are of the audio less its mean: a random walk that
    stays small enough for float32 over songs of many minutes (float64 cost 15 % of a GAN
    training step)."""
    half = width // 2
    x = audio - ops.mean(audio, axis=1, keepdims=True)
    ones = ops.ones_like(x[:1])

    def average(signal):
        padded = ops.cumsum(ops.pad(signal, [[0, 0], [half + 1, half]]), axis=1)
        return padded[:, 2 * half + 1:] - padded[:, :-(2 * half + 1)]

    count = average(average(ones) / (2 * half + 1)) / (2 * half + 1)
    smooth = average(average(x) / (2 * half + 1)) / (2 * half + 1)
    # near the ends the windows hold fewer samples: divide by the share that is there
    return x - smooth / count


@keras.saving.register_keras_serializable(package="musicrgan")
class RemoveDrift(keras.layers.Layer):
    """`remove_drift` as a decoder's last layer, so training sees the filtered audio: a
    decoder trained on log-spectral distances finds a DC offset a cheap way to put energy
    in the lowest bins, which a loss on the filtered output cannot reward."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def call(self, audio):
        return remove_drift(audio, self.width)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "width": self.width}
