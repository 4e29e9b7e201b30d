"""`wave-vae` (the first stage of the hierarchical techno-loop generator, RAVE's kind of
model): a fully convolutional raw-audio VAE. The encoder of modules/conv (dilated residual
units, strided convolutions) compresses time by the product of `strides` (128x by default:
125 latent steps a second at 16 kHz) into a smooth trajectory of `latent_dim` channels; the
mirrored decoder turns a trajectory back into audio.

What holds the latents to the prior N(0, I), by `regularizer`:
- `kl`: a VAE. The encoder gives a Gaussian per step; the KL divergence to N(0, I) is
  weighted by `kl_weight` times a warm-up factor rising 0 → 1 over `warmup_steps`, so the
  decoder learns to use the latents before the prior pulls them in (otherwise the posterior
  collapses to the prior and the decoder ignores it).
- `mmd`: a Wasserstein autoencoder (Tolstikhin et al. 2018, WAE-MMD). The encoder is
  deterministic; the maximum mean discrepancy between the batch's latent steps and draws from
  N(0, I) (`kernel`: imq or rbf, over several widths) is weighted by `mmd_weight` with the
  same warm-up. Each latent is a point, so nothing can collapse, and the aggregate of all
  of them is what matches the prior.

Reconstruction: the multi-scale spectral distance (modules/spectral, RAVE's and DDSP's:
sum over scales of the L1 distance of log magnitudes) times `spectral_weight`, plus an
optional waveform L1 term (`waveform_weight`, 0 by default: with a spectral loss alone the
phase is free, which is what lets the decoder spend its capacity on what is heard).
best.keras follows `val_reconstruction` (the regularizer's weight changes while warming up,
so the total loss of two epochs does not compare).

It encodes (means of the posterior) and decodes; generating by itself draws every latent
step independently from N(0, temperature²), which gives the timbre of the corpus but no
structure: the `latent-vae` over its trajectories is what generates loops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..modules import gaussian
from ..modules.conv import decoder, encoder
from ..modules.spectral import multiscale_spectral_distance
from . import register
from .base import (ConfigError, Encodes, Generates, RunningMeans, TrainConfig, TwoNetworks,
                   tf)

import keras  # noqa: E402
from keras import ops  # noqa: E402

REGULARIZERS = ("kl", "mmd")


@dataclass
class WaveVAEConfig(TrainConfig):
    window: int = 16384          # samples per training window (about 1 s at 16 kHz)
    channels: int = 32           # of the first convolutions; doubling per downsampling, to 256
    strides: list = field(default_factory=lambda: [4, 4, 4, 2])   # compression: their product
    latent_dim: int = 16
    regularizer: str = "kl"      # or "mmd": a Wasserstein autoencoder
    kl_weight: float = 0.1       # kl: weight of the KL term after warm-up (RAVE's beta)
    mmd_weight: float = 10.0     # mmd: weight of the MMD term after warm-up (WAE's lambda)
    kernel: str = "imq"          # mmd: inverse multiquadratic or rbf
    warmup_steps: int = 1000     # the regularizer's weight rises 0 → 1 over these steps
    spectral_weight: float = 1.0
    waveform_weight: float = 0.0
    batch_size: int = 8
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(f"regularizer must be kl or mmd, got {self.regularizer!r}")
        if self.kernel not in gaussian.KERNELS:
            raise ConfigError(f"kernel must be imq or rbf, got {self.kernel!r}")
        if not self.strides or not all(isinstance(s, int) and s >= 1 for s in self.strides):
            raise ConfigError(f"strides must be a list of whole numbers >= 1, got "
                              f"{self.strides!r}")
        if min(self.channels, self.latent_dim, self.warmup_steps) < 1:
            raise ConfigError("channels, latent_dim and warmup_steps must be >= 1")
        if self.window < math.prod(self.strides):
            raise ConfigError(f"window ({self.window}) must be at least one latent step "
                              f"({math.prod(self.strides)} samples)")
        if self.spectral_weight + self.waveform_weight <= 0:
            raise ConfigError("spectral_weight or waveform_weight must be above 0: the model "
                              "needs a reconstruction loss")


@keras.saving.register_keras_serializable(package="musicrgan")
class WaveVAEModel(RunningMeans, TwoNetworks, keras.Model):
    """Encoder, Gaussian (kl) or deterministic (mmd) latent, decoder, with the train step."""
    NETWORKS = ("encoder", "decoder")
    SETTINGS = ("latent_dim", "regularizer", "kl_weight", "mmd_weight", "kernel",
                "warmup_steps", "spectral_weight", "waveform_weight")

    def __init__(self, encoder, decoder, latent_dim, regularizer="kl", kl_weight=0.1,
                 mmd_weight=10.0, kernel="imq", warmup_steps=1000, spectral_weight=1.0,
                 waveform_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim, self.regularizer = latent_dim, regularizer
        self.kl_weight, self.mmd_weight, self.kernel = kl_weight, mmd_weight, kernel
        self.warmup_steps = warmup_steps
        self.spectral_weight, self.waveform_weight = spectral_weight, waveform_weight
        self.start_tracking(("loss", "reconstruction", regularizer, "warmup"))

    def build(self, input_shape=None):
        self.built = True  # encoder and decoder are functional models, built when made

    def means(self, audio, training=False):
        """(batch, samples) → (batch, steps, latent_dim): the posterior's means (kl) or the
        latents themselves (mmd)."""
        return self.encoder(audio, training=training)[..., :self.latent_dim]

    def call(self, audio):
        return self.decoder(self.means(audio))

    def warmup(self):
        return gaussian.schedule(self.optimizer.iterations, self.warmup_steps)

    def _step_losses(self, audio, training, seed):
        h = self.encoder(audio, training=training)
        if self.regularizer == "kl":
            mean, log_var = gaussian.split(h, self.latent_dim)
            z = gaussian.sample(mean, log_var, seed) if training else mean
            regularization = gaussian.kl_to_standard_normal(mean, log_var)
            weight = self.kl_weight
        else:
            z = h
            mmd_seed = seed if training else ops.convert_to_tensor([0, 29], "int32")
            regularization = gaussian.mmd_to_standard_normal(
                ops.reshape(z, (-1, self.latent_dim)), mmd_seed, self.kernel)
            weight = self.mmd_weight
        decoded = self.decoder(z, training=training)
        reconstruction = self.spectral_weight * multiscale_spectral_distance(audio, decoded)
        if self.waveform_weight:
            reconstruction = reconstruction + self.waveform_weight * ops.mean(
                ops.abs(audio - decoded))
        return reconstruction, regularization, weight

    def train_step(self, audio):
        seed = ops.stack([ops.cast(self.optimizer.iterations, "int32"), 31])
        with tf.GradientTape() as tape:
            reconstruction, regularization, weight = self._step_losses(audio, True, seed)
            loss = reconstruction + weight * self.warmup() * regularization
        weights = self.encoder.trainable_variables + self.decoder.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._track(loss, reconstruction, regularization, self.warmup())

    def test_step(self, audio):
        reconstruction, regularization, weight = self._step_losses(audio, False, None)
        return self._track(reconstruction + weight * regularization, reconstruction,
                           regularization, 1.0)


@register
class WaveVAE(Encodes, Generates):
    name = "wave-vae"
    Config = WaveVAEConfig
    monitor = "val_reconstruction"

    def latent_hop(self):
        """Samples per latent step."""
        return math.prod(self.config.strides)

    def window(self):
        return self.config.window // self.latent_hop() * self.latent_hop()

    def examples(self, windows):
        return windows

    def build(self):
        c = self.config
        outputs = 2 * c.latent_dim if c.regularizer == "kl" else c.latent_dim
        model = WaveVAEModel(encoder(c.channels, c.strides, outputs),
                             decoder(c.channels, c.strides, c.latent_dim), c.latent_dim,
                             c.regularizer, c.kl_weight, c.mmd_weight, c.kernel,
                             c.warmup_steps, c.spectral_weight, c.waveform_weight,
                             name="wave_vae")
        model.build()
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0))

    def encode(self, model, audio):
        """(batch, samples) → (batch, ceil(samples / latent hop), latent_dim) float32
        trajectories (the audio padded with silence to whole steps)."""
        encode = self.traced(model, "encode", model.means,
                             tf.TensorSpec((None, None), tf.float32))
        return np.asarray(encode(self.whole_steps(audio)), np.float32)

    def decode(self, model, latents):
        """(batch, steps, latent_dim) → (batch, steps * latent hop) audio."""
        decode = self.traced(model, "decode", lambda z: model.decoder(z, training=False),
                             tf.TensorSpec((None, None, self.config.latent_dim), tf.float32))
        return np.asarray(decode(np.asarray(latents, np.float32)))

    def generate(self, model, request, progress=None):
        samples = request.samples(self.rate)
        steps = -(-samples // self.latent_hop())
        rng = np.random.default_rng(request.seed)
        latents = request.temperature * rng.standard_normal(
            (request.n, steps, self.config.latent_dim)).astype(np.float32)
        audio = self.decode(model, latents)
        if progress:
            progress(samples)
        return np.clip(audio[:, :samples], -1.0, 1.0).astype(np.float32)

    def exports(self, model):
        audio = keras.Input((None,), name="audio")
        means = keras.layers.Identity(name="latents")(model.means(audio))
        given = keras.Input((None, self.config.latent_dim), name="latents")
        decoded = keras.layers.Identity(name="audio")(model.decoder(given))
        return {"encoder": keras.Model(audio, means, name="encoder"),
                "decoder": keras.Model(given, decoded, name="decoder")}

    def export_notes(self, model):
        hop = self.latent_hop()
        return {"samples_per_latent_step": hop, "latent_dim": self.config.latent_dim,
                "encoder": f"audio (batch, samples) at {self.rate} Hz, samples a multiple of "
                           f"{hop} (pad with silence) -> latents (batch, samples / {hop}, "
                           f"{self.config.latent_dim}): the posterior's means",
                "decoder": f"latents (batch, steps, {self.config.latent_dim}) -> audio "
                           f"(batch, steps * {hop})",
                "prior": "N(0, I) for every latent step"}
