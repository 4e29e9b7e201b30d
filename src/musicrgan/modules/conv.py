"""Fully convolutional raw-audio encoder and decoder stacks with dilated residual units (as
in Jukebox's and MelGAN's): the encoder downsamples by the product of its strides, the
decoder mirrors it with transposed convolutions. What vqvae and wave-vae are built from, and
latent-vae over a trajectory's channels. With `bands` above 1 the networks work on a PQMF
filter bank's sub-bands (modules/pqmf) instead of the samples, as RAVE's: every layer runs
at 1/bands of the sample rate, and the downsampling is bands times the strides'.
`istft_decoder` is the other way back to audio, as Vocos's (Siuzdak 2023): every
layer at the latent rate, the last predicting one short-time spectrum (log magnitude and
phase) per latent step, an inverse STFT making the samples; no layer runs at the sample
rate."""

from __future__ import annotations

import math

import numpy as np

from .. import import_tensorflow
from .features import RemoveDrift
from .pqmf import PQMFAnalysis, PQMFSynthesis

import_tensorflow()
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


def residual_unit(x, channels: int, dilation: int, name: str):
    h = layers.LeakyReLU(0.2)(x)
    h = layers.Conv1D(channels, 3, dilation_rate=dilation, padding="same", name=f"{name}_dil")(h)
    h = layers.LeakyReLU(0.2)(h)
    h = layers.Conv1D(channels, 1, name=f"{name}_mix")(h)
    return layers.Add()([x, h])


def _widths(channels: int, strides: list[int], cap: int) -> list[int]:
    """Channels before each downsampling and after the last: doubling, at most `cap`."""
    return [min(cap, channels * 2 ** i) for i in range(len(strides) + 1)]


def encoder(channels: int, strides: list[int], latent_dim: int, dilations=(1, 3, 9),
            cap: int = 256, name: str = "encoder", inputs: int | None = None,
            bands: int = 1) -> keras.Model:
    """(batch, samples) audio → (batch, samples / (bands * prod(strides)), latent_dim); with
    `inputs`, a sequence of that many channels (a latent trajectory) instead of audio."""
    widths = _widths(channels, strides, cap)
    if inputs is None:
        given = keras.Input((None,), name="audio")
        h = (PQMFAnalysis(bands, name="pqmf_analysis")(given) if bands > 1
             else layers.Reshape((-1, 1))(given))
    else:
        given = h = keras.Input((None, inputs), name="trajectory")
    h = layers.Conv1D(widths[0], 7, padding="same", name="enc_in")(h)
    for i, stride in enumerate(strides):
        for d in dilations:
            h = residual_unit(h, widths[i], d, f"enc{i}_res{d}")
        h = layers.LeakyReLU(0.2)(h)
        h = layers.Conv1D(widths[i + 1], 2 * stride, strides=stride, padding="same",
                          name=f"enc{i}_down")(h)
    h = layers.LeakyReLU(0.2)(h)
    latents = layers.Conv1D(latent_dim, 3, padding="same", name="enc_out")(h)
    return keras.Model(given, latents, name=name)


def decoder(channels: int, strides: list[int], latent_dim: int, dilations=(1, 3, 9),
            cap: int = 256, name: str = "decoder", outputs: int | None = None,
            bands: int = 1, drift_filter: int = 0) -> keras.Model:
    """(batch, steps, latent_dim) → (batch, steps * bands * prod(strides)) audio (in [-1, 1]
    for one band; each band's in [-1, 1] for several), with `drift_filter`, less its DC and
    sub-audio drift (features.remove_drift over that many samples); with `outputs`, a
    sequence of that many unbounded channels instead."""
    widths = _widths(channels, strides, cap)
    latents = keras.Input((None, latent_dim), name="latents")
    h = layers.Conv1D(widths[-1], 7, padding="same", name="dec_in")(latents)
    for i in reversed(range(len(strides))):
        h = layers.LeakyReLU(0.2)(h)
        h = layers.Conv1DTranspose(widths[i], 2 * strides[i], strides=strides[i],
                                   padding="same", name=f"dec{i}_up")(h)
        for d in dilations:
            h = residual_unit(h, widths[i], d, f"dec{i}_res{d}")
    h = layers.LeakyReLU(0.2)(h)
    if outputs is not None:
        return keras.Model(latents, layers.Conv1D(outputs, 7, padding="same", name="dec_out")(h),
                           name=name)
    h = layers.Conv1D(bands, 7, padding="same", activation="tanh", name="dec_out")(h)
    audio = (PQMFSynthesis(bands, name="pqmf_synthesis")(h) if bands > 1
             else layers.Reshape((-1,))(h))
    if drift_filter:
        audio = RemoveDrift(drift_filter, name="remove_drift")(audio)
    return keras.Model(latents, audio, name=name)


@keras.saving.register_keras_serializable(package="musicrgan")
class InverseSTFT(keras.layers.Layer):
    """(batch, frames, 2 * (fft // 2 + 1)) log magnitudes and phases → (batch, frames * hop)
    samples, frame t centred on sample t * hop (Vocos's head; `fft` a multiple of `hop`).
    The magnitude is capped at e^4 as Vocos caps it, so one wild output early in training
    cannot blow the audio up. The inverse DFT is a product with a real basis (the Hann
    synthesis window folded in) and the overlap-add a sum of shifted copies, not complex
    tensors: so the layer exports to ONNX and LiteRT, which have no complex type."""

    def __init__(self, fft: int, hop: int, **kwargs):
        super().__init__(**kwargs)
        if fft % hop or fft < 2 * hop:
            raise ValueError(f"the inverse STFT needs an fft that is a multiple of the hop "
                             f"({hop}) and at least twice it, got {fft}")
        self.fft, self.hop = fft, hop
        n = np.arange(fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / fft)   # periodic Hann, as ops.stft's
        overlap = sum(np.roll(window ** 2, k * hop) for k in range(fft // hop))
        synthesis = window / overlap
        k = np.arange(fft // 2 + 1)[:, None]
        weight = np.where((k == 0) | (k == fft // 2), 1.0, 2.0) / fft * synthesis
        self.cos_basis = (weight * np.cos(2 * np.pi * k * n / fft)).astype(np.float32)
        self.sin_basis = (-weight * np.sin(2 * np.pi * k * n / fft)).astype(np.float32)

    def call(self, spectra):
        bins = self.fft // 2 + 1
        magnitude = ops.exp(ops.minimum(spectra[..., :bins], 4.0))
        phase = spectra[..., bins:]
        frames = (ops.matmul(magnitude * ops.cos(phase), self.cos_basis)
                  + ops.matmul(magnitude * ops.sin(phase), self.sin_basis))
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]
        overlaps = self.fft // self.hop
        pieces = ops.reshape(frames, (batch, steps, overlaps, self.hop))
        summed = sum(ops.pad(pieces[:, :, k], [[0, 0], [k, overlaps - 1 - k], [0, 0]])
                     for k in range(overlaps))
        audio = ops.reshape(summed, (batch, (steps + overlaps - 1) * self.hop))
        # frame 0 starts half a frame before sample 0
        start = self.fft // 2
        return audio[:, start:start + steps * self.hop]

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else input_shape[1] * self.hop
        return (input_shape[0], frames)

    def get_config(self):
        return {**super().get_config(), "fft": self.fft, "hop": self.hop}


def istft_decoder(channels: int, strides: list[int], latent_dim: int, fft: int,
                  dilations=(1, 3, 9), cap: int = 256, name: str = "decoder",
                  drift_filter: int = 0) -> keras.Model:
    """(batch, steps, latent_dim) → (batch, steps * prod(strides)) audio: as many dilated
    residual blocks as `decoder` has, all at the latent rate and the width `decoder` has
    there, then one `fft`-point spectrum per step (hop: the product of the strides)."""
    hop, width = math.prod(strides), _widths(channels, strides, cap)[-1]
    latents = keras.Input((None, latent_dim), name="latents")
    h = layers.Conv1D(width, 7, padding="same", name="dec_in")(latents)
    for i in range(len(strides)):
        for d in dilations:
            h = residual_unit(h, width, d, f"dec{i}_res{d}")
    h = layers.LeakyReLU(0.2)(h)
    spectra = layers.Conv1D(2 * (fft // 2 + 1), 7, padding="same", name="dec_spectra")(h)
    audio = InverseSTFT(fft, hop, name="inverse_stft")(spectra)
    if drift_filter:
        audio = RemoveDrift(drift_filter, name="remove_drift")(audio)
    return keras.Model(latents, audio, name=name)


DECODERS = ("conv", "istft")


def decoder_config_error(kind: str, fft: int, hop: int, bands: int = 1) -> str | None:
    """What is wrong with an autoencoder config's choice of decoder (`decoder`, its
    `istft_fft`, the samples per latent step), or None."""
    if kind not in DECODERS:
        return f"decoder must be conv or istft, got {kind!r}"
    if kind == "istft" and bands > 1:
        return "decoder: istft makes the samples themselves: it needs bands: 1"
    if kind == "istft" and (fft % hop or fft < 2 * hop):
        return (f"istft_fft must be a multiple of the downsampling ({hop}) and at least "
                f"twice it, got {fft}")
    return None


def audio_decoder(kind: str, channels: int, strides: list[int], latent_dim: int, fft: int,
                  bands: int = 1, drift_filter: int = 0) -> keras.Model:
    """An autoencoder's decoder by its config: `decoder` ("istft" or "conv")."""
    if kind == "istft":
        return istft_decoder(channels, strides, latent_dim, fft, drift_filter=drift_filter)
    return decoder(channels, strides, latent_dim, bands=bands, drift_filter=drift_filter)
