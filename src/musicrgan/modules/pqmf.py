"""A pseudo-quadrature mirror filter bank (PQMF; Nguyen 1994, as RAVE uses it): audio split
into `bands` critically sampled sub-bands, (batch, samples) → (batch, samples / bands,
bands), and back. A network that works on the bands runs every layer at 1/bands of the
sample rate with bands times the channels, which is what makes RAVE fast on a CPU.

The prototype is a Kaiser-window low-pass whose cut-off is searched (as RAVE's
`get_prototype`) so that the filter bank reconstructs nearly perfectly: about 58 dB SNR at
the default length of 16 taps per band. Both directions are centred (no delay): the
analysis filters are applied so that band step m sits at sample m * bands, and the synthesis
crops the filters' half-length off again; only the first and last `taps` samples of a clip
see the zero padding. The filters are made from the layer's config, not stored as weights."""

from __future__ import annotations

import functools

import numpy as np

from .. import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402

ATTENUATION_DB = 100  # of the prototype's stop band (RAVE's)


def default_taps(bands: int) -> int:
    return 16 * bands + 1


@functools.lru_cache(maxsize=8)
def filters(bands: int, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """(analysis, synthesis) filters, (bands, taps) each: the prototype cosine-modulated to
    each band, with phases ±π/4 that cancel the neighbouring bands' aliasing."""
    from scipy import optimize, signal

    def prototype(cutoff):
        _, beta = signal.kaiserord(ATTENUATION_DB, cutoff / np.pi)
        return signal.firwin(taps, cutoff, window=("kaiser", beta), scale=False, fs=2 * np.pi)

    def aliasing(cutoff):  # the prototype's autocorrelation at multiples of 2 * bands
        h = prototype(float(cutoff[0]))
        g = np.convolve(h, h[::-1])
        return np.max(np.abs(g[len(g) // 2::2 * bands][1:]))

    cutoff = optimize.fmin(aliasing, [np.pi / (2 * bands)], disp=False)[0]
    h = prototype(cutoff)
    n = np.arange(taps) - (taps - 1) / 2
    k = np.arange(bands)[:, None]
    phase = (-1) ** k * np.pi / 4
    carrier = (2 * k + 1) * np.pi / (2 * bands) * n
    return 2 * h * np.cos(carrier + phase), 2 * h * np.cos(carrier - phase)


class _FilterBank(keras.layers.Layer):
    def __init__(self, bands: int, taps: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.bands, self.taps = bands, taps or default_taps(bands)
        if self.taps % 2 == 0:
            raise ValueError(f"taps must be odd, got {self.taps}")
        self.analysis, self.synthesis = filters(self.bands, self.taps)

    @property
    def half(self) -> int:
        return (self.taps - 1) // 2

    def get_config(self):
        return {**super().get_config(), "bands": self.bands, "taps": self.taps}


@keras.saving.register_keras_serializable(package="musicrgan")
class PQMFAnalysis(_FilterBank):
    """(batch, samples) → (batch, samples / bands, bands); samples a multiple of bands."""

    def call(self, audio):
        # a convolution with each band's filter, read at every bands-th sample: as a strided
        # cross-correlation with the filters reversed, the audio padded by half a filter
        kernel = ops.convert_to_tensor(self.analysis[:, ::-1].T[:, None, :], self.compute_dtype)
        padded = ops.pad(audio, [[0, 0], [self.half, self.half]])
        return ops.conv(padded[..., None], kernel, strides=self.bands, padding="valid")


@keras.saving.register_keras_serializable(package="musicrgan")
class PQMFSynthesis(_FilterBank):
    """(batch, steps, bands) → (batch, steps * bands)."""

    def call(self, band_audio):
        # each band upsampled by zeros and filtered, summed: one transposed convolution
        kernel = ops.convert_to_tensor(self.bands * self.synthesis.T[:, None, :],
                                       self.compute_dtype)
        full = ops.conv_transpose(band_audio, kernel, strides=self.bands, padding="valid")
        samples = ops.shape(band_audio)[1] * self.bands
        return full[:, self.half:self.half + samples, 0]
