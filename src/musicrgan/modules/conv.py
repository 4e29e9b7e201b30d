"""Fully convolutional raw-audio encoder and decoder stacks with dilated residual units (as
in Jukebox's and MelGAN's): the encoder downsamples by the product of its strides, the
decoder mirrors it with transposed convolutions. What vqvae and wave-vae are built from, and
latent-vae over a trajectory's channels. With `bands` above 1 the networks work on a PQMF
filter bank's sub-bands (modules/pqmf) instead of the samples, as RAVE's: every layer runs
at 1/bands of the sample rate, and the downsampling is bands times the strides'."""

from __future__ import annotations

from .. import import_tensorflow
from .features import RemoveDrift
from .pqmf import PQMFAnalysis, PQMFSynthesis

import_tensorflow()
import keras  # noqa: E402
from keras import layers  # noqa: E402


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
