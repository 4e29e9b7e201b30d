"""`spec-vae` (AiTunes's models, done right): a VAE on log-mel spectrograms. The model takes
raw audio windows and computes their log-mel frames itself (modules/spectral.LogMel), so
`encode` and the training data are audio like every other family's. A 1-D convolutional
encoder over time (the mel bands as channels) downsamples the frames by the product of
`strides`; the decoder mirrors it back to log-mel frames. `variant: residual` puts dilated
residual units (modules/conv.residual_unit) in both; `latent: vq` swaps the Gaussian latent
for the vector quantizer of vqvae (EMA codebook, dead-code restarts), whose codes a
code-prior run can then learn.

The Gaussian latent's KL term is weighted by `kl_weight` times an annealing factor: linear
(0 → 1 over `anneal_steps`, then 1) or cyclic (Fu et al. 2019: each cycle of `anneal_steps`
rises over its first half and holds at 1 over the second), so the decoder learns to use the
latent before the prior pulls it in. best.keras follows `val_reconstruction` (the KL weight
changes while training, so the total loss of two epochs does not compare).

Back to audio: the decoded log-mel frames → linear magnitudes (non-negative least squares
through the mel filterbank, `modules.spectral.mel_to_magnitudes`) → batched fast
Griffin-Lim (`griffin_lim` iterations, momentum 0.99). On the demo corpus's test split this
inversion alone costs a Fréchet distance of 9.8 against the clips it came from, where the
clipped pseudo-inverse and the 1984 Griffin-Lim cost 12.9 (docs/benchmarks.md). No
well-kept library offers a better inversion without trained weights (a neural vocoder would
be a model to train or download), so Griffin-Lim's phase artefacts are in every clip.
Generation samples the prior: N(0, temperature²) latents for `gaussian`; for `vq`, codes drawn
from the codebook's usage (its EMA counts), each position independently."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..modules import gaussian, replicas
from ..modules.conv import residual_unit
from ..modules.quantizer import CodeVectors, NearestCodes, VectorQuantizer
from ..modules.spectral import LogMel, griffin_lim
from . import register
from .base import (ConfigError, Encodes, Generates, RunningMeans, TrainConfig, MadeOfNetworks,
                   check_whole_numbers, tf)

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


@dataclass
class SpecVAEConfig(TrainConfig):
    window: int = 16384          # samples per training window (about 1 s at 16 kHz)
    n_fft: int = 1024
    hop: int = 256               # samples per mel frame
    mels: int = 80
    variant: str = "conv"        # or "residual": dilated residual units in both networks
    latent: str = "gaussian"     # or "vq": a vector-quantized latent
    channels: int = 128
    strides: list = field(default_factory=lambda: [2, 2])   # frames per latent step: product
    latent_dim: int = 32
    kl_weight: float = 0.01      # gaussian: the KL term's weight after annealing
    anneal: str = "linear"       # or "cyclic"
    anneal_steps: int = 1000
    codes: int = 256             # vq: codebook size
    commitment: float = 0.25     # vq: weight of the commitment loss
    decay: float = 0.99          # vq: codebook moving averages
    griffin_lim: int = 32        # Griffin-Lim iterations back to audio
    batch_size: int = 16
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if self.variant not in ("conv", "residual"):
            raise ConfigError(f"variant must be conv or residual, got {self.variant!r}")
        if self.latent not in ("gaussian", "vq"):
            raise ConfigError(f"latent must be gaussian or vq, got {self.latent!r}")
        if self.anneal not in ("linear", "cyclic"):
            raise ConfigError(f"anneal must be linear or cyclic, got {self.anneal!r}")
        check_whole_numbers("strides", self.strides)
        if self.hop < 1 or self.n_fft < self.hop or self.n_fft % 2 or (self.n_fft - self.hop) % 2:
            raise ConfigError("n_fft must be even, at least hop, and n_fft - hop even")
        if min(self.mels, self.channels, self.latent_dim, self.anneal_steps) < 1 or self.codes < 2:
            raise ConfigError("mels, channels, latent_dim, anneal_steps must be >= 1, codes >= 2")
        if self.window < self.hop * math.prod(self.strides):
            raise ConfigError(f"window ({self.window}) must be at least one latent step "
                              f"({self.hop * math.prod(self.strides)} samples)")


# log-mel values (natural log of magnitudes + 1e-5) sit in about [-11.5, 3]: the networks see
# them shifted and scaled to about [-1.5, 2]
LOG_MEL_CENTRE, LOG_MEL_SCALE = -4.0, 5.0


def _encoder(c: SpecVAEConfig, outputs: int) -> keras.Model:
    frames = keras.Input((None, c.mels), name="log_mel")
    h = layers.Conv1D(c.channels, 5, padding="same", name="enc_in")(frames)
    for i, stride in enumerate(c.strides):
        if c.variant == "residual":
            for d in (1, 3):
                h = residual_unit(h, c.channels, d, f"enc{i}_res{d}")
        h = layers.LeakyReLU(0.2)(h)
        h = layers.Conv1D(c.channels, 2 * stride, strides=stride, padding="same",
                          name=f"enc{i}_down")(h)
    h = layers.LeakyReLU(0.2)(h)
    return keras.Model(frames, layers.Conv1D(outputs, 3, padding="same", name="enc_out")(h),
                       name="encoder")


def _decoder(c: SpecVAEConfig) -> keras.Model:
    latents = keras.Input((None, c.latent_dim), name="latents")
    h = layers.Conv1D(c.channels, 3, padding="same", name="dec_in")(latents)
    for i in reversed(range(len(c.strides))):
        h = layers.LeakyReLU(0.2)(h)
        h = layers.Conv1DTranspose(c.channels, 2 * c.strides[i], strides=c.strides[i],
                                   padding="same", name=f"dec{i}_up")(h)
        if c.variant == "residual":
            for d in (1, 3):
                h = residual_unit(h, c.channels, d, f"dec{i}_res{d}")
    h = layers.LeakyReLU(0.2)(h)
    return keras.Model(latents, layers.Conv1D(c.mels, 5, padding="same", name="dec_out")(h),
                       name="decoder")


@keras.saving.register_keras_serializable(package="musicrgan")
class SpecVAEModel(RunningMeans, MadeOfNetworks, keras.Model):
    """Log-mel front end, encoder, Gaussian or vector-quantized latent, decoder."""
    NETWORKS = ("encoder", "decoder")
    SETTINGS = ("rate", "n_fft", "hop", "mels", "latent", "latent_dim", "kl_weight", "anneal",
                "anneal_steps", "codes", "commitment", "decay")

    def __init__(self, encoder, decoder, rate, n_fft, hop, mels, latent, latent_dim,
                 kl_weight=0.01, anneal="linear", anneal_steps=1000, codes=256,
                 commitment=0.25, decay=0.99, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.rate, self.n_fft, self.hop, self.mels = rate, n_fft, hop, mels
        self.latent, self.latent_dim = latent, latent_dim
        self.kl_weight, self.anneal, self.anneal_steps = kl_weight, anneal, anneal_steps
        self.codes, self.commitment, self.decay = codes, commitment, decay
        self.log_mel = LogMel(rate, n_fft, hop, mels, name="log_mel")
        self.quantizer = None
        if latent == "vq":
            self.quantizer = VectorQuantizer(codes, latent_dim, decay, name="quantizer")
            self.quantizer.build()
        names = ["loss", "reconstruction"] + (["commitment", "perplexity", "dead_codes"]
                                              if latent == "vq" else ["kl", "kl_factor"])
        self.start_tracking(names)

    def build(self, input_shape=None):
        self.built = True  # encoder and decoder are functional models, built when made

    def features(self, audio):
        """(batch, samples) → the networks' view of its log-mel frames (batch, frames, mels)."""
        return self.normalized(self.log_mel(audio))

    @staticmethod
    def normalized(log_mel):
        return (log_mel - LOG_MEL_CENTRE) / LOG_MEL_SCALE

    @staticmethod
    def to_log_mel(features):
        return features * LOG_MEL_SCALE + LOG_MEL_CENTRE

    def kl_factor(self):
        """The annealing factor (0..1) at the optimizer's current step."""
        return gaussian.schedule(self.optimizer.iterations, self.anneal_steps, self.anneal)

    def call(self, audio):
        return self.decoder(self.latents(self.features(audio)))

    def latents(self, features, training=False):
        """The latent each step maps to: the Gaussian's mean, or the quantized vector."""
        h = self.encoder(features, training=training)
        if self.quantizer is not None:
            return self.quantizer(h)[0]
        return h[..., :self.latent_dim]

    def _step_losses(self, audio, training, seed):
        target = self.features(audio)
        h = self.encoder(target, training=training)
        if self.quantizer is not None:
            z, indices = self.quantizer(h)
            extra = self.quantizer.commitment(h, indices)
        else:
            mean, log_var = gaussian.split(h, self.latent_dim)
            z = gaussian.sample(mean, log_var, seed) if training else mean
            extra = gaussian.kl_to_standard_normal(mean, log_var)
            indices = None
        decoded = self.decoder(z, training=training)
        frames = ops.minimum(ops.shape(decoded)[1], ops.shape(target)[1])
        reconstruction = ops.mean(ops.abs(decoded[:, :frames] - target[:, :frames]))
        return reconstruction, extra, h, indices

    def train_step(self, audio):
        seed = replicas.step_seed(self.optimizer, 23)
        with tf.GradientTape() as tape:
            reconstruction, extra, h, indices = self._step_losses(audio, True, seed)
            weight = self.commitment if self.quantizer is not None \
                else self.kl_weight * self.kl_factor()
            loss = reconstruction + weight * extra
            share = replicas.share(loss)
        weights = self.encoder.trainable_variables + self.decoder.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(share, weights), weights))
        if self.quantizer is not None:
            perplexity, dead = self.quantizer.update(h, indices, seed)
            return self._track(loss, reconstruction, extra, perplexity, dead)
        return self._track(loss, reconstruction, extra, self.kl_factor())

    def test_step(self, audio):
        reconstruction, extra, _, indices = self._step_losses(audio, False, None)
        if self.quantizer is not None:
            perplexity = self.quantizer.perplexity(indices)
            return self._track(reconstruction + self.commitment * extra, reconstruction,
                               extra, perplexity, 0.0)
        return self._track(reconstruction + self.kl_weight * extra, reconstruction, extra, 1.0)


@register
class SpecVAE(Encodes, Generates):
    name = "spec-vae"
    Config = SpecVAEConfig
    monitor = "val_reconstruction"

    @property
    def steps_hop(self) -> int:
        """Samples per latent step."""
        return self.config.hop * math.prod(self.config.strides)

    def latent_hop(self):
        return self.steps_hop

    def codebook_size(self):
        return self.config.codes if self.config.latent == "vq" else None

    def latent_channels(self):
        return None if self.config.latent == "vq" else self.config.latent_dim

    def window(self):
        return self.config.window // self.steps_hop * self.steps_hop

    def examples(self, windows):
        return windows

    def build(self):
        c = self.config
        outputs = c.latent_dim if c.latent == "vq" else 2 * c.latent_dim
        model = SpecVAEModel(_encoder(c, outputs), _decoder(c), self.rate, c.n_fft, c.hop,
                             c.mels, c.latent, c.latent_dim, c.kl_weight, c.anneal,
                             c.anneal_steps, c.codes, c.commitment, c.decay, name="spec_vae")
        model.build()
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0))

    def encode(self, model, audio):
        """(batch, samples) → (batch, ceil(samples / latent hop), latent_dim) Gaussian means,
        or (batch, steps) int32 codes for `latent: vq`."""
        h = model.encoder(model.features(self.whole_steps(audio)), training=False)
        if model.quantizer is not None:
            return np.asarray(model.quantizer.indices(h)).astype(np.int32)
        return np.asarray(h[..., :self.config.latent_dim], np.float32)

    def decode(self, model, latents):
        latents = np.asarray(latents)
        if model.quantizer is not None:
            latents = model.quantizer.lookup(latents.astype(np.int32))
        log_mel = model.to_log_mel(model.decoder(latents, training=False))
        return np.asarray(griffin_lim(model.log_mel, log_mel, self.config.griffin_lim))

    def generate(self, model, request, progress=None):
        n, samples = request.n, request.samples(self.rate)
        steps = -(-samples // self.steps_hop)
        rng = np.random.default_rng(request.seed)
        if model.quantizer is not None:
            usage = np.asarray(model.quantizer.ema_count, np.float64)
            latents = rng.choice(len(usage), size=(n, steps), p=usage / usage.sum())
        else:
            latents = request.temperature * rng.standard_normal(
                (n, steps, self.config.latent_dim)).astype(np.float32)
        audio = self.decode(model, latents)
        if progress:
            progress(samples)
        return self.finished(audio, samples)

    def exports(self, model):
        """Encoder and decoder on log-mel frames (the mel front end and Griffin-Lim stay
        outside: the notes say how to compute them)."""
        frames = keras.Input((None, self.config.mels), name="log_mel")
        h = model.encoder(model.normalized(frames))
        if model.quantizer is not None:
            encoder = keras.Model(frames, NearestCodes(model.quantizer, name="codes")(h),
                                  name="encoder")
            given = keras.Input((None,), dtype="int32", name="codes")
            vectors = CodeVectors(model.quantizer, name="vectors")(given)
        else:
            mean = keras.layers.Identity(name="latents")(h[..., :self.config.latent_dim])
            encoder = keras.Model(frames, mean, name="encoder")
            given = vectors = keras.Input((None, self.config.latent_dim), name="latents")
        decoded = model.to_log_mel(model.decoder(vectors))
        return {"encoder": encoder,
                "decoder": keras.Model(given, keras.layers.Identity(name="log_mel")(decoded),
                                       name="decoder")}

    def export_notes(self, model):
        c = self.config
        return {"rate": self.rate, "frames_per_latent_step": math.prod(c.strides),
                "log_mel": (f"natural log of (magnitude + 1e-5) through {c.mels} HTK-mel "
                            f"triangles (unit peak, 0 Hz to {self.rate // 2} Hz) of a Hann "
                            f"{c.n_fft}-point STFT every {c.hop} samples, the audio padded "
                            f"with {(c.n_fft - c.hop) // 2} zeros each side: one frame per "
                            f"{c.hop} samples"),
                "audio": (f"fast Griffin-Lim ({c.griffin_lim} iterations, momentum 0.99) "
                          "from the non-negative magnitudes whose mel projection is "
                          "nearest the frames"),
                "prior": ("codes drawn from the codebook's usage" if c.latent == "vq"
                          else "latents drawn from N(0, 1)")}
