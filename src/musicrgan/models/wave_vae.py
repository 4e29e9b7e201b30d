"""`wave-vae` (the first stage of the hierarchical techno-loop generator, RAVE's kind of
model): a fully convolutional raw-audio VAE. The encoder of modules/conv (dilated residual
units, strided convolutions) compresses time by the product of `strides` (128x by default:
125 latent steps a second at 16 kHz) into a smooth trajectory of `latent_dim` channels; the
decoder turns a trajectory back into audio: by default vqvae's (Vocos's: residual units at
the latent rate, one short-time spectrum per step, an inverse STFT), or by config
(`decoder: conv`) the encoder's mirror in transposed convolutions. With `bands` above 1
(and the conv decoder) both work on a PQMF filter bank's sub-bands (RAVE's multi-band
front end; modules/pqmf), compressing by bands times the strides' product.

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

Reconstruction: vqvae's distance (modules.spectral.AudioDistance), each term by weight:
the multi-scale spectral distance (RAVE's and DDSP's: sum over scales of the L1 distance of
log magnitudes) with the spectral convergence, the waveform L1, and the distance of the
log-mel frames' mean and covariance (the onset-flux distance off). RAVE trains on the
spectral distance alone, which leaves the phase free; at minutes of CPU the waveform and
moments terms reconstructed the corpus nearer (docs/hierarchical.md).
best.keras follows `val_reconstruction` (the regularizer's weight changes while warming up,
so the total loss of two epochs does not compare).

Two phases (`train continue RUN --phase adversarial`): after the autoencoder phase, the
encoder is frozen and the decoder fine-tuned against a discriminator, as RAVE's second phase
(models/adversarial: the settings, steps and optimizers vqvae shares).

It encodes (means of the posterior) and decodes; generating by itself draws every latent
step independently from N(0, temperature²), which gives the timbre of the corpus but no
structure: the `latent-vae` over its trajectories is what generates loops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..modules import gaussian, replicas
from ..modules.conv import audio_decoder, decoder_config_error, encoder
from ..metrics import METRIC_RATE
from ..modules.spectral import SPECTRAL_SCALES, AudioDistance
from ..validation import ReconstructionFrechet
from . import register
from .adversarial import (ADVERSARIAL_METRICS, AdversarialConfig, AdversarialDecoder,
                          AdversarialPhase)
from .base import (ConfigError, Encodes, RunningMeans, SamplesPrior, MadeOfNetworks,
                   check_whole_numbers, tf)

import keras  # noqa: E402
from keras import ops  # noqa: E402

REGULARIZERS = ("kl", "mmd")


@dataclass
class WaveVAEConfig(AdversarialConfig):
    window: int = 16384          # samples per training window (about 1 s at 16 kHz)
    # the defaults since 2026-12-07 are vqvae's network (16 channels, Vocos's decoder at the
    # latent rate, its loss terms) at 128x: after 3 minutes its reconstructions of the test
    # split scored Fréchet 38 where the earlier defaults' (32 channels at the sample rate,
    # strides [4, 4, 4, 2], 16 latent channels, a transposed-convolution decoder, the
    # spectral distance alone) scored 524 (docs/hierarchical.md, "vqvae's network")
    channels: int = 16           # of the first convolutions; doubling per downsampling, to 256
    strides: list = field(default_factory=lambda: [4, 8, 4])   # compression: their product
    # 1: the networks hear the samples; more: a PQMF filter bank's sub-bands, as RAVE's
    # (compression: bands x the strides' product; e.g. bands 16 with strides [2, 2, 2])
    bands: int = 1
    latent_dim: int = 32
    regularizer: str = "kl"      # or "mmd": a Wasserstein autoencoder
    kl_weight: float = 0.1       # kl: weight of the KL term after warm-up (RAVE's beta)
    mmd_weight: float = 10.0     # mmd: weight of the MMD term after warm-up (WAE's lambda)
    kernel: str = "imq"          # mmd: inverse multiquadratic or rbf
    warmup_steps: int = 1000     # the regularizer's weight rises 0 → 1 over these steps
    spectral_weight: float = 1.0
    # STFT sizes of the spectral distance (longer than the window: left out)
    spectral_scales: list = field(default_factory=lambda: list(SPECTRAL_SCALES))
    waveform_weight: float = 1.0
    # the decoder's audio less its DC and sub-audio drift (modules.features.RemoveDrift over
    # this many samples; 0: none): trained on spectral distances alone, decoders learned DC
    # offsets up to 0.59, 97 % of their clips' power (docs/compare.md, "DC")
    drift_filter: int = 512
    # back to audio: "conv" (transposed convolutions up to the samples) or "istft" (Vocos's
    # head at the latent rate, one `istft_fft`-point spectrum per step: vqvae's default,
    # modules/conv.istft_decoder; needs bands: 1)
    decoder: str = "istft"
    istft_fft: int = 512
    # weight of the spectral convergence beside the log-spectral distance (vqvae's
    # convergence_weight)
    convergence_weight: float = 1.0
    # weights of the onset-flux distance and of the log-mel frames' moments distance
    # (vqvae's onset_weight and moments_weight: modules.spectral.AudioDistance)
    onset_weight: float = 0.0
    moments_weight: float = 3.0
    # of one budget (compare, a chain's first stage), the adversarial phase's share: 0.25
    # brought a 5-minute chain 44 % nearer the corpus, its noise and pulse the corpus's (0.4
    # as near, twice as noisy: docs/compare.md, "The adversarial phase in the chain")
    adversarial_share: float = 0.25
    batch_size: int = 8
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(f"regularizer must be kl or mmd, got {self.regularizer!r}")
        if self.kernel not in gaussian.KERNELS:
            raise ConfigError(f"kernel must be imq or rbf, got {self.kernel!r}")
        check_whole_numbers("strides", self.strides)
        check_whole_numbers("spectral_scales", self.spectral_scales)
        if min(self.channels, self.latent_dim, self.warmup_steps, self.bands) < 1:
            raise ConfigError("channels, latent_dim, warmup_steps and bands must be >= 1")
        if self.drift_filter < 0:
            raise ConfigError(f"drift_filter must be >= 0, got {self.drift_filter}")
        hop = self.bands * math.prod(self.strides)
        error = decoder_config_error(self.decoder, self.istft_fft, hop, self.bands)
        if error:
            raise ConfigError(error)
        if self.window < hop:
            raise ConfigError(f"window ({self.window}) must be at least one latent step "
                              f"({hop} samples)")
        if self.spectral_weight + self.waveform_weight <= 0:
            raise ConfigError("spectral_weight or waveform_weight must be above 0: the model "
                              "needs a reconstruction loss")


@keras.saving.register_keras_serializable(package="musicrgan")
class WaveVAEModel(AdversarialDecoder, RunningMeans, MadeOfNetworks, keras.Model):
    """Encoder, Gaussian (kl) or deterministic (mmd) latent, decoder, with the train step of
    each phase; in the adversarial phase also the discriminator and its optimizer."""
    NETWORKS = ("encoder", "decoder", "discriminator")
    SETTINGS = ("latent_dim", "regularizer", "kl_weight", "mmd_weight", "kernel",
                "warmup_steps", "spectral_weight", "spectral_scales", "waveform_weight", "phase",
                "judges", "adversarial_weight", "feature_matching", "convergence_weight",
                "onset_weight", "moments_weight", "rate")

    def __init__(self, encoder, decoder, discriminator=None, latent_dim=16, regularizer="kl",
                 kl_weight=0.1, mmd_weight=10.0, kernel="imq", warmup_steps=1000,
                 spectral_weight=1.0, spectral_scales=SPECTRAL_SCALES, waveform_weight=0.0,
                 phase="autoencoder", judges=0, adversarial_weight=1.0, feature_matching=10.0,
                 convergence_weight=0.0, onset_weight=0.0, moments_weight=0.0,
                 rate=METRIC_RATE, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.latent_dim, self.regularizer = latent_dim, regularizer
        self.kl_weight, self.mmd_weight, self.kernel = kl_weight, mmd_weight, kernel
        self.warmup_steps = warmup_steps
        self.spectral_weight, self.waveform_weight = spectral_weight, waveform_weight
        self.spectral_scales = tuple(spectral_scales)
        self.phase, self.judges = phase, judges
        self.adversarial_weight, self.feature_matching = adversarial_weight, feature_matching
        self.convergence_weight = convergence_weight
        self.onset_weight, self.moments_weight, self.rate = onset_weight, moments_weight, rate
        self.distance = AudioDistance(rate, spectral_weight, spectral_scales,
                                      convergence_weight, waveform_weight, onset_weight,
                                      moments_weight)
        if phase == "adversarial":
            self.start_tracking(ADVERSARIAL_METRICS)
        else:
            self.start_tracking(("loss", "reconstruction", regularizer, "warmup"))

    def build(self, input_shape=None):
        self.built = True  # the networks are functional models, built when made

    def means(self, audio, training=False):
        """(batch, samples) → (batch, steps, latent_dim): the posterior's means (kl) or the
        latents themselves (mmd)."""
        return self.encoder(audio, training=training)[..., :self.latent_dim]

    def call(self, audio):
        return self.decoder(self.means(audio))

    def warmup(self):
        return gaussian.schedule(self.optimizer.iterations, self.warmup_steps)

    def _latents(self, audio, training, seed):
        """(latents for the decoder, the regularizer's value, its weight)."""
        h = self.encoder(audio, training=training and self.phase == "autoencoder")
        if self.regularizer == "kl":
            mean, log_var = gaussian.split(h, self.latent_dim)
            z = gaussian.sample(mean, log_var, seed) if training else mean
            return z, gaussian.kl_to_standard_normal(mean, log_var), self.kl_weight
        mmd_seed = seed if training else ops.convert_to_tensor([0, 29], "int32")
        mmd = gaussian.mmd_to_standard_normal(ops.reshape(h, (-1, self.latent_dim)), mmd_seed,
                                              self.kernel)
        return h, mmd, self.mmd_weight

    def _seed(self):
        return replicas.step_seed(self.optimizer, 31)

    def train_step(self, audio):
        if self.phase == "adversarial":
            # the latents sampled as in training, so that the decoder keeps serving the
            # posterior's spread
            return self._adversarial_step(audio, self._latents(audio, True, self._seed())[0])
        with tf.GradientTape() as tape:
            z, regularization, weight = self._latents(audio, True, self._seed())
            reconstruction = self.distance(audio, self.decoder(z, training=True))
            loss = reconstruction + weight * self.warmup() * regularization
            share = replicas.share(loss)
        weights = self.trained_weights()
        self.optimizer.apply_gradients(zip(tape.gradient(share, weights), weights))
        return self._track(loss, reconstruction, regularization, self.warmup())

    def test_step(self, audio):
        z, regularization, weight = self._latents(audio, False, None)
        decoded = self.decoder(z, training=False)
        if self.phase == "adversarial":
            return self._adversarial_test(audio, decoded)
        reconstruction = self.distance(audio, decoded)
        return self._track(reconstruction + weight * regularization, reconstruction,
                           regularization, 1.0)


@register
class WaveVAE(AdversarialPhase, Encodes, SamplesPrior):
    name = "wave-vae"
    Config = WaveVAEConfig
    # best.keras by the Fréchet distance of the test clips' reconstructions, as vqvae's: in
    # the adversarial phase the spectral distance kept a worse epoch (docs/hierarchical.md,
    # "The adversarial phase on the new defaults")
    monitor = "val_frechet"

    def callbacks(self, data):
        return [ReconstructionFrechet(self, data)]

    def latent_hop(self):
        """Samples per latent step."""
        return self.config.bands * math.prod(self.config.strides)

    def window(self):
        return self.config.window // self.latent_hop() * self.latent_hop()

    def examples(self, windows):
        return windows

    def build(self):
        c = self.config
        outputs = 2 * c.latent_dim if c.regularizer == "kl" else c.latent_dim
        return self._assembled(encoder(c.channels, c.strides, outputs, bands=c.bands),
                               audio_decoder(c.decoder, c.channels, c.strides, c.latent_dim,
                                             c.istft_fft, bands=c.bands,
                                             drift_filter=c.drift_filter), "autoencoder")

    def assemble(self, model, phase):
        return self._assembled(model.encoder, model.decoder, phase)

    def _assembled(self, encoder_net, decoder_net, phase):
        c = self.config
        discriminator, judges = self.discriminator_of(phase)
        model = WaveVAEModel(encoder_net, decoder_net, discriminator, c.latent_dim,
                             c.regularizer, c.kl_weight, c.mmd_weight, c.kernel,
                             c.warmup_steps, c.spectral_weight, c.spectral_scales,
                             c.waveform_weight, phase, judges, c.adversarial_weight,
                             c.feature_matching, c.convergence_weight, c.onset_weight,
                             c.moments_weight, self.rate, name="wave_vae")
        model.build()
        self.compile(model)
        return model

    def encode(self, model, audio):
        """(batch, samples) → (batch, ceil(samples / latent hop), latent_dim) float32
        trajectories (the audio padded with silence to whole steps)."""
        encode = self.traced(model, "encode", model.means,
                             tf.TensorSpec((None, None), tf.float32))
        return np.asarray(encode(self.whole_steps(audio)), np.float32)

    def latent_channels(self):
        return self.config.latent_dim

    def cached_posterior(self):
        return self.config.regularizer == "kl"  # (a Wasserstein autoencoder's is a point)

    def cache_latents(self, model, audio):
        """kl: the posterior's means and log variances, (batch, steps, 2 * latent_dim)."""
        if not self.cached_posterior():
            return self.encode(model, audio)
        posterior = self.traced(model, "posterior", lambda audio: ops.concatenate(
            gaussian.split(model.encoder(audio, training=False), self.config.latent_dim), -1),
            tf.TensorSpec((None, None), tf.float32))
        return np.asarray(posterior(self.whole_steps(audio)), np.float32)

    def decode(self, model, latents):
        """(batch, steps, latent_dim) → (batch, steps * latent hop) audio."""
        decode = self.traced(model, "decode", lambda z: model.decoder(z, training=False),
                             tf.TensorSpec((None, None, self.config.latent_dim), tf.float32))
        return np.asarray(decode(np.asarray(latents, np.float32)))

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
