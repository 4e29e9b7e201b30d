"""Log spectra and the band statistics that compare two sounds' spectra: what lstm-gan's
feature matching and validation use (and what a spectral loss or discriminator builds on)."""

from __future__ import annotations

import numpy as np

from .. import import_tensorflow
from ..metrics import HOP, METRIC_RATE, N_FFT, N_MELS, mel_filterbank
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


def band_statistics_distance(real, fake, weights=None):
    """Mean absolute difference of band statistics, summed over statistics and halved;
    `weights` (one array of bands per statistic, mean 1) weighs the bands."""
    weights = [1.0] * len(real) if weights is None else weights
    return sum(ops.mean(w * ops.abs(r - f)) for r, f, w in zip(real, fake, weights)) / 2


def mel_density_weights(frame_length: int, rate: int) -> np.ndarray:
    """(frame_length // 2 + 1,) weights of a spectrum's bins, proportional to the mel scale's
    density at each bin's frequency (d mel / d Hz) and of mean 1: at 16 kHz the top octave
    weighs 24 % instead of a linear mean's 50 %, 300-2500 Hz 46 % instead of 28 %."""
    hz = np.fft.rfftfreq(frame_length, 1.0 / rate)
    density = 1.0 / (700.0 + hz)
    return (density / density.mean()).astype("float32")


def log_mel_frames(log_spectrum, bank):
    """(batch, frames, bins) log magnitudes (LogSpectrum's) → (batch * frames, mels) natural
    logs of mel-band power: the frame embedding of metrics.log_mel, from a spectrum already
    taken; `bank` is metrics.mel_filterbank's transpose, (bins, mels)."""
    mel = ops.log(ops.matmul(ops.exp(2.0 * log_spectrum), bank) + 1e-6)
    return ops.reshape(mel, (-1, ops.shape(mel)[-1]))


def frame_moments_distance(real, fake):
    """How far two sets of frames (rows) are in their first two moments: the mean absolute
    difference of their mean vectors plus that of their covariance matrices (the two parts
    of a Fréchet distance between Gaussians fitted to them, in L1 form: no matrix square
    root to differentiate). Unlike per-band statistics, the covariance also sees how bands
    move together: a kick's low thump with its click, a bass line under the hats."""
    def moments(frames):
        mean = ops.mean(frames, axis=0)
        centered = frames - mean
        count = ops.cast(ops.shape(frames)[0], frames.dtype)
        return mean, ops.matmul(ops.transpose(centered), centered) / (count - 1.0)

    (mean_r, cov_r), (mean_f, cov_f) = moments(real), moments(fake)
    return ops.mean(ops.abs(mean_r - mean_f)) + ops.mean(ops.abs(cov_r - cov_f))


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


def multiscale_spectral_distance(x, y, scales=SPECTRAL_SCALES, eps=1e-5, convergence=0.0):
    """sum over scales of mean | log(|STFT(x)| + eps) - log(|STFT(y)| + eps) |, for
    (batch, samples) audio: the reconstruction distance of DDSP and RAVE (Hann windows at
    75 % overlap). Scales longer than the audio are left out. With `convergence`, that
    weight of each scale's spectral convergence too, || |X| - |Y| || / || |X| || (Parallel
    WaveGAN's). With the log distance alone vqvae's reconstructions came out 3-4 LU quiet
    (docs/compare.md, "vqvae at the code rate"), likely because an L1 in log magnitude is
    met by the median of what might come where the decoder is unsure of it (when a hit
    falls, how loud); the convergence, on linear magnitudes, asks for the energy."""
    total = 0.0
    for n in scales:
        if n > x.shape[-1]:
            continue
        magnitudes = []
        for audio in (x, y):
            real, imag = ops.stft(audio, n, n // 4, n, window="hann", center=True)
            magnitudes.append(ops.sqrt(real * real + imag * imag + 1e-12))
        total = total + ops.mean(ops.abs(ops.log(magnitudes[0] + eps)
                                         - ops.log(magnitudes[1] + eps)))
        if convergence:
            total = total + convergence * (ops.sqrt(ops.sum((magnitudes[0] - magnitudes[1]) ** 2))
                                           / ops.sqrt(ops.sum(magnitudes[0] ** 2) + 1e-12))
    return total


def onset_flux(log_mel, audio):
    """(batch, samples) → (batch, frames - 1): the spectral flux of metrics.onset_envelope
    (the half-wave-rectified rise of each log-mel band from one frame to the next, averaged
    over the bands), differentiable, through the LogMel layer `log_mel`."""
    mel = log_mel(audio)
    return ops.mean(ops.relu(mel[:, 1:] - mel[:, :-1]), axis=-1)


def onset_flux_distance(x, y, log_mel):
    """Mean absolute difference of two sounds' onset_flux: how far a reconstruction's hits
    rise differently from the original's (metrics.tempo's strength is the autocorrelation
    of that envelope). Level does not change it: a rise in log units."""
    return ops.mean(ops.abs(onset_flux(log_mel, x) - onset_flux(log_mel, y)))


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


class AudioDistance:
    """The reconstruction distance the raw-audio autoencoders train on (vqvae, wave-vae), for
    (batch, samples) audio at `rate`: `spectral` times the multi-scale log-spectral distance
    (with `convergence`), plus `waveform` times the samples' mean absolute difference,
    `onset` times the onset-flux distance and `moments` times the distance of the log-mel
    frames' mean and covariance over the batch (the frames of metrics.log_mel, N_FFT and
    HOP scaled to the rate: what the Fréchet distance measures). A term of weight 0 costs
    nothing."""

    def __init__(self, rate: int, spectral: float = 1.0, scales=SPECTRAL_SCALES,
                 convergence: float = 0.0, waveform: float = 0.0, onset: float = 0.0,
                 moments: float = 0.0):
        self.spectral, self.scales, self.convergence = spectral, tuple(scales), convergence
        self.waveform, self.onset, self.moments = waveform, onset, moments
        n_fft = N_FFT * rate // METRIC_RATE
        self.frames_mel = LogMel(rate, n_fft, HOP * rate // METRIC_RATE, N_MELS)
        # metrics.onset_envelope's frames: half the hop
        self.onset_mel = LogMel(rate, n_fft, HOP // 2 * rate // METRIC_RATE, N_MELS)

    def __call__(self, audio, decoded):
        distance = 0.0
        if self.spectral:
            distance = self.spectral * multiscale_spectral_distance(
                audio, decoded, self.scales, convergence=self.convergence)
        if self.waveform:
            distance = distance + self.waveform * ops.mean(ops.abs(audio - decoded))
        if self.onset:
            distance = distance + self.onset * onset_flux_distance(audio, decoded,
                                                                   self.onset_mel)
        if self.moments:
            frames = [ops.reshape(self.frames_mel(x), (-1, N_MELS)) for x in (audio, decoded)]
            distance = distance + self.moments * frame_moments_distance(*frames)
        return distance


def mel_to_magnitudes(log_mel: LogMel, frames, iterations: int = 50):
    """Log-mel frames → (batch, frames, bins) linear magnitudes: the non-negative spectrum
    whose mel projection is nearest the frames' (least squares), by multiplicative updates
    (Lee & Seung 2001; librosa's `mel_to_stft` solves the same problem with L-BFGS-B, one
    frame block at a time) from the pseudo-inverse's solution. Better than the clipped
    pseudo-inverse alone: that one rings negative between the triangles' centres, and the
    clipping leaves holes and spikes in the spectrum Griffin-Lim then has to match."""
    mel = ops.maximum(ops.exp(frames) - 1e-5, 0.0)
    target = ops.matmul(mel, ops.transpose(log_mel.bank))             # B^T m
    # a multiplicative update keeps a zero at zero: start every bin above it
    magnitude = ops.maximum(ops.matmul(mel, log_mel.pseudo_inverse), 1e-6)
    for _ in range(iterations):
        # B^T B x through the mels (bins x mels x 2 products, not bins x bins)
        fitted = ops.matmul(ops.matmul(magnitude, log_mel.bank), ops.transpose(log_mel.bank))
        magnitude = magnitude * target / (fitted + 1e-10)
    return magnitude


def griffin_lim(log_mel: LogMel, frames, iterations: int, seed: int = 0,
                momentum: float = 0.99, magnitude=None):
    """Log-mel frames as `log_mel` makes them → (batch, frames * hop) audio: magnitudes by
    `mel_to_magnitudes`, phases by the fast Griffin-Lim algorithm (Perraudin, Balazs &
    Søndergaard 2013: each iteration's consistent spectrum pushed on by `momentum` times its
    change; 0 is Griffin & Lim's 1984 original) from a seeded random start, all rows at
    once. `magnitude` replaces mel_to_magnitudes's (bench/bench_inversion.py's baseline)."""
    if magnitude is None:
        magnitude = mel_to_magnitudes(log_mel, frames)
    angle = 2 * np.pi * np.random.default_rng(seed).random(tuple(magnitude.shape))
    real, imag = magnitude * np.cos(angle), magnitude * np.sin(angle)
    n_fft, hop, pad = log_mel.n_fft, log_mel.hop, log_mel.pad
    samples = int(magnitude.shape[1]) * hop

    def to_audio(real, imag):
        audio = ops.istft((real, imag), n_fft, hop, n_fft, window="hann", center=False)
        return audio[:, pad:pad + samples]

    previous = real, imag
    for _ in range(iterations):
        real, imag = log_mel.spectrum(to_audio(real, imag))
        scale = magnitude / ops.sqrt(real * real + imag * imag + 1e-12)
        projected = real * scale, imag * scale
        real, imag = (p + momentum * (p - q) for p, q in zip(projected, previous))
        previous = projected
    return to_audio(*previous)
