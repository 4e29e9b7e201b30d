"""Log spectra and the band statistics that compare two sounds' spectra: what lstm-gan's
feature matching and validation use (and what a spectral loss or discriminator builds on)."""

from __future__ import annotations

import numpy as np

from .. import import_tensorflow
from ..metrics import mel_filterbank
from .features import frame

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


@keras.saving.register_keras_serializable(package="musicrgan")
class LogSpectrum(keras.layers.Layer):
    """(batch, samples) → (batch, frames, frame // 2 + 1) log magnitudes of Hann-windowed
    frames at 50 % hop."""

    def __init__(self, frame_length: int, **kwargs):
        super().__init__(**kwargs)
        self.frame_length = frame_length
        # no weights: built from the start (Keras builds a model symbolically before `fit`
        # under a distribution strategy, through its call, unless every layer is built)
        self.built = True

    def call(self, audio):
        frames = frame(audio, self.frame_length, self.frame_length // 2)
        frames = frames * np.hanning(self.frame_length).astype("float32")
        real, imag = ops.rfft(frames)
        return ops.log(ops.sqrt(real * real + imag * imag + 1e-10) + 1e-3)

    def get_config(self):
        return {**super().get_config(), "frame_length": self.frame_length}


def band_statistics(audio, spectra) -> list:
    """Per window, for each LogSpectrum in `spectra`: each band's mean over time of the log
    spectrum (the average spectrum), its standard deviation over time (how much the band
    moves: hits and gaps against a steady hum) and the log of its mean power (loudness: a
    noisier sound with the same mean log spectrum is quieter); 3 x len(spectra) arrays of
    (batch, bands)."""
    statistics = []
    for spectrum in spectra:
        s = spectrum(audio)
        statistics += [ops.mean(s, axis=1), ops.std(s, axis=1),
                       0.5 * ops.log(ops.mean(ops.exp(2.0 * s), axis=1))]
    return statistics


def band_statistics_distance(real, fake):
    return sum(ops.mean(ops.abs(r - f)) for r, f in zip(real, fake)) / 2


class ValidationDistance(keras.metrics.Metric):
    """The feature-matching distance over a whole validation pass: band statistics are
    summed over every batch and compared once, so the split's files all count alike (per
    batch, a last batch of one file swung the validation loss from epoch to epoch)."""

    def __init__(self, bands, name="validation_distance", **kwargs):
        super().__init__(name=name, **kwargs)
        self.sums = [self.add_variable(shape=(2, n), initializer="zeros", name=f"sums_{i}")
                     for i, n in enumerate(bands)]
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, real, fake):
        for sums, r, f in zip(self.sums, real, fake):
            sums.assign_add(ops.stack([ops.sum(r, axis=0), ops.sum(f, axis=0)]))
        self.count.assign_add(ops.cast(ops.shape(real[0])[0], "float32"))

    def result(self):
        count = ops.maximum(self.count, 1.0)
        return band_statistics_distance([s[0] / count for s in self.sums],
                                        [s[1] / count for s in self.sums])


SPECTRAL_SCALES = (2048, 1024, 512, 256, 128, 64)


def multiscale_spectral_distance(x, y, scales=SPECTRAL_SCALES, eps=1e-5):
    """sum over scales of mean | log(|STFT(x)| + eps) - log(|STFT(y)| + eps) |, for
    (batch, samples) audio: the reconstruction distance of DDSP and RAVE (Hann windows at
    75 % overlap). Scales longer than the audio are left out."""
    total = 0.0
    for n in scales:
        if n > x.shape[-1]:
            continue
        magnitudes = []
        for audio in (x, y):
            real, imag = ops.stft(audio, n, n // 4, n, window="hann", center=True)
            magnitudes.append(ops.log(ops.sqrt(real * real + imag * imag + 1e-12) + eps))
        total = total + ops.mean(ops.abs(magnitudes[0] - magnitudes[1]))
    return total


@keras.saving.register_keras_serializable(package="musicrgan")
class LogMel(keras.layers.Layer):
    """(batch, samples) → (batch, samples / hop, mels): natural log of (magnitude + 1e-5)
    through HTK-mel triangles of a Hann STFT, the audio padded with (n_fft - hop) / 2 zeros
    each side so there is one frame per hop. `pseudo_inverse` maps mel magnitudes back to
    linear ones (for Griffin-Lim)."""

    def __init__(self, rate: int, n_fft: int, hop: int, mels: int, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.n_fft, self.hop, self.mels = rate, n_fft, hop, mels
        bank = mel_filterbank(rate, n_fft, mels).astype("float32")
        self.bank = bank.T                                            # (bins, mels)
        self.pseudo_inverse = np.linalg.pinv(bank).T.astype("float32")  # (mels, bins)

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop) // 2

    def spectrum(self, audio):
        """(real, imag) of the padded audio's STFT: (batch, frames, bins) each."""
        padded = ops.pad(audio, [[0, 0], [self.pad, self.pad]])
        return ops.stft(padded, self.n_fft, self.hop, self.n_fft, window="hann", center=False)

    def call(self, audio):
        real, imag = self.spectrum(audio)
        magnitude = ops.sqrt(real * real + imag * imag + 1e-12)
        return ops.log(ops.matmul(magnitude, self.bank) + 1e-5)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "n_fft": self.n_fft,
                "hop": self.hop, "mels": self.mels}


def griffin_lim(log_mel: LogMel, frames, iterations: int, seed: int = 0):
    """Log-mel frames as `log_mel` makes them → (batch, frames * hop) audio: magnitudes
    through the filterbank's pseudo-inverse (clipped at zero), phases by Griffin-Lim
    (Griffin & Lim 1984) from a seeded random start, all rows at once."""
    magnitude = ops.maximum(ops.matmul(ops.exp(frames) - 1e-5, log_mel.pseudo_inverse), 0.0)
    angle = 2 * np.pi * np.random.default_rng(seed).random(tuple(magnitude.shape))
    real, imag = magnitude * np.cos(angle), magnitude * np.sin(angle)
    n_fft, hop, pad = log_mel.n_fft, log_mel.hop, log_mel.pad
    samples = int(magnitude.shape[1]) * hop

    def to_audio(real, imag):
        audio = ops.istft((real, imag), n_fft, hop, n_fft, window="hann", center=False)
        return audio[:, pad:pad + samples]

    for _ in range(iterations):
        real, imag = log_mel.spectrum(to_audio(real, imag))
        scale = magnitude / ops.sqrt(real * real + imag * imag + 1e-12)
        real, imag = real * scale, imag * scale
    return to_audio(real, imag)
