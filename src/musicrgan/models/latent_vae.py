"""`latent-vae`: the second level of the hierarchical techno-loop generator. A temporal VAE
over the latent trajectories of an upstream run with continuous latents (`--upstream` a
wave-vae run; a Gaussian spec-vae's works too): a 1-D convolutional encoder (modules/conv,
dilated residual units) compresses `window` latent steps by the product of `strides` into
high-level latents (64 = 4*4*4 by default: a point per 0.5 s of audio at 16 kHz through a
128x wave-vae; strides [4, 4, 4, 4] make one point of a 256-step window), held to N(0, I)
by a KL term with warm-up;
the mirrored decoder predicts, for every latent step, a Gaussian: mean and log variance.

What it learns, by `objective`:
- `trajectory`: the upstream's latent trajectories, its posterior's means (or, with
  `sample_posterior: true`, draws from it: the cache holds means and log variances), scored
  by their Gaussian negative log-likelihood under the predicted mean and variance.
- `posterior`: the upstream's posterior itself: its means and log variances go in, and the
  loss is KL(N(mu1, sigma1) || N(mu1_hat, sigma1_hat)), per latent step and channel summed,
  between the upstream's posterior and the predicted one. Needs an upstream whose cache
  holds a posterior (wave-vae with `regularizer: kl`).

Generation draws high-level latents from N(0, temperature²), decodes them to a trajectory
(the predicted means) and that to audio through the upstream's decoder: one draw makes a
whole window's trajectory at once, so what holds a loop together (its pulse) can be in the
draw, not in a step-by-step process. It also encodes (audio → upstream latents → high-level
latents) and decodes, so reconstruction and interpolation work in the high-level space."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..modules import gaussian, replicas
from ..modules.conv import decoder, encoder
from . import register
from .base import (ConfigError, Encodes, OnLatents, RunningMeans, SamplesPrior, LatentsConfig,
                   MadeOfNetworks, check_whole_numbers, tf)

import keras  # noqa: E402
from keras import ops  # noqa: E402

OBJECTIVES = ("trajectory", "posterior")
LOG_2PI = float(np.log(2 * np.pi))
LOG_VAR_OFFSET = -4.0
MIN_LOG_VAR = -6.0


@dataclass
class LatentVAEConfig(LatentsConfig):
    window: int = 256            # upstream latent steps per training example
    # compression: their product; 64 upstream steps a point since 2026-12-07: at 256 (one
    # point per 2 s) the posterior collapsed in 3 minutes (KL 0.15 nats a point: every draw
    # decoded to nearly the same trajectory), at 64 it was used (KL 98) and its clips came
    # half as far from the corpus (docs/hierarchical.md, "latent-vae collapses")
    strides: list = field(default_factory=lambda: [4, 4, 4])
    channels: int = 64           # of the first convolutions; doubling per downsampling, to 256
    latent_dim: int = 64         # of each high-level latent
    objective: str = "trajectory"   # or "posterior"
    sample_posterior: bool = False  # trajectory: targets drawn from the upstream's posterior
    #                                 (false: its means; draws of the channels a KL wave-vae
    #                                 leaves unused are unit noise no model can predict)
    kl_weight: float = 0.01      # of the high-level KL term after warm-up
    warmup_steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be trajectory or posterior, got "
                              f"{self.objective!r}")
        check_whole_numbers("strides", self.strides)
        if min(self.channels, self.latent_dim, self.warmup_steps) < 1:
            raise ConfigError("channels, latent_dim and warmup_steps must be >= 1")
        if self.window < math.prod(self.strides) or self.window % math.prod(self.strides):
            raise ConfigError(f"window ({self.window}) must be a multiple of the compression "
                              f"({math.prod(self.strides)})")


def gaussian_nll(target, mean, log_var):
    """Mean over steps of the negative log-likelihood of target under N(mean, exp(log_var)),
    summed over channels."""
    return ops.mean(0.5 * ops.sum(LOG_2PI + log_var + ops.square(target - mean)
                                  / ops.exp(log_var), axis=-1))


def gaussian_kl(mean1, log_var1, mean2, log_var2):
    """Mean over steps of KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))), summed
    over channels."""
    return ops.mean(0.5 * ops.sum(log_var2 - log_var1 + (ops.exp(log_var1) + ops.square(
        mean1 - mean2)) / ops.exp(log_var2) - 1.0, axis=-1))


@keras.saving.register_keras_serializable(package="musicrgan")
class LatentVAEModel(RunningMeans, MadeOfNetworks, keras.Model):
    """High-level encoder and decoder over (batch, steps, channels) trajectories."""
    NETWORKS = ("encoder", "decoder")
    SETTINGS = ("trajectory_dim", "latent_dim", "objective", "sample_posterior", "posterior",
                "kl_weight", "warmup_steps")

    def __init__(self, encoder, decoder, trajectory_dim, latent_dim, objective="trajectory",
                 sample_posterior=True, posterior=True, kl_weight=0.01, warmup_steps=1000,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.trajectory_dim, self.latent_dim = trajectory_dim, latent_dim
        self.objective, self.sample_posterior = objective, sample_posterior
        self.posterior = posterior   # the cache's steps are [means | log variances]
        self.kl_weight, self.warmup_steps = kl_weight, warmup_steps
        self.start_tracking(("loss", "reconstruction", "kl", "warmup"))

    def build(self, input_shape=None):
        self.built = True

    def warmup(self):
        return gaussian.schedule(self.optimizer.iterations, self.warmup_steps)

    def encoder_input(self, cached):
        """A cache window → what the encoder reads: the posterior (objective posterior), or
        the trajectory (its means)."""
        if self.objective == "posterior":
            return cached
        return cached[..., :self.trajectory_dim] if self.posterior else cached

    def trajectory(self, points):
        """High-level latents → the predicted trajectory's means."""
        return self.decoder(points)[..., :self.trajectory_dim]

    def _terms(self, cached, training, seed):
        d = self.trajectory_dim
        mean, log_var = gaussian.split(self.encoder(self.encoder_input(cached),
                                                    training=training), self.latent_dim)
        # the posterior starts narrow (sigma ~0.14, not 1): at 1, the noise of the draws
        # drowned what the untrained encoder said, the decoder learnt to ignore it and the
        # posterior collapsed to the prior in the first epoch (2026-11-30, docs/hierarchical.md)
        log_var = log_var + LOG_VAR_OFFSET
        points = gaussian.sample(mean, log_var, seed) if training else mean
        predicted_mean, predicted_log_var = gaussian.split(self.decoder(points, training=training),
                                                           d)
        # a floor under the predicted variance (sigma >= 0.05): channels the upstream does
        # not use are near constant, and a variance shrinking to e^-10 there made the loss
        # jump by orders of magnitude on any step that moved their mean
        predicted_log_var = ops.maximum(predicted_log_var, MIN_LOG_VAR)
        if self.objective == "posterior":
            reconstruction = gaussian_kl(cached[..., :d], ops.clip(cached[..., d:], -10.0, 10.0),
                                         predicted_mean, predicted_log_var)
        else:
            target = cached[..., :d]
            if self.posterior and self.sample_posterior and training:
                target = gaussian.sample(target, ops.clip(cached[..., d:], -10.0, 10.0),
                                         ops.stack([seed[0], seed[1] + 1]))
            reconstruction = gaussian_nll(target, predicted_mean, predicted_log_var)
        return reconstruction, gaussian.kl_to_standard_normal(mean, log_var)

    def train_step(self, cached):
        seed = replicas.step_seed(self.optimizer, 37)
        with tf.GradientTape() as tape:
            reconstruction, kl = self._terms(cached, True, seed)
            loss = reconstruction + self.kl_weight * self.warmup() * kl
            share = replicas.share(loss)
        weights = self.encoder.trainable_variables + self.decoder.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(share, weights), weights))
        return self._track(loss, reconstruction, kl, self.warmup())

    def test_step(self, cached):
        reconstruction, kl = self._terms(cached, False, None)
        return self._track(reconstruction + self.kl_weight * kl, reconstruction, kl, 1.0)


@register
class LatentVAE(OnLatents, Encodes, SamplesPrior):
    name = "latent-vae"
    Config = LatentVAEConfig
    monitor = "val_reconstruction"

    def accepts(self, family):
        if family.codebook_size():
            return (f"its latents are codes of a codebook ({family.name}'s): latent-vae "
                    "learns continuous trajectories (a wave-vae run's)")
        if self.config.objective == "posterior" and not family.cached_posterior():
            return (f"objective posterior needs the upstream's posterior, which a "
                    f"{family.name} run of this config does not give (a wave-vae run with "
                    "regularizer kl does); use objective trajectory")
        return None

    @property
    def compression(self) -> int:
        """Upstream latent steps per high-level latent."""
        return math.prod(self.config.strides)

    def latent_hop(self):
        return self.upstream_family.latent_hop() * self.compression

    def window(self):
        return self.config.window

    def examples(self, cached):
        return cached

    def latent_channels(self):
        return self.config.latent_dim

    def build(self):
        c = self.config
        dim, posterior = self.upstream_family.latent_channels(), \
            self.upstream_family.cached_posterior()
        inputs = 2 * dim if c.objective == "posterior" else dim
        model = LatentVAEModel(
            encoder(c.channels, c.strides, 2 * c.latent_dim, inputs=inputs),
            decoder(c.channels, c.strides, c.latent_dim, outputs=2 * dim),
            dim, c.latent_dim, c.objective, c.sample_posterior, posterior, c.kl_weight,
            c.warmup_steps, name="latent_vae")
        model.build()
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0))

    def encode(self, model, audio):
        """(batch, samples) → (batch, steps, latent_dim) high-level means (the audio padded
        with silence to whole high-level steps)."""
        up = self.upstream_family
        cached = up.cache_latents(self.upstream_model, self.whole_steps(audio))
        encode = self.traced(model, "encode", lambda cached: model.encoder(
            model.encoder_input(cached), training=False)[..., :model.latent_dim],
            tf.TensorSpec((None, None, cached.shape[-1]), tf.float32))
        return np.asarray(encode(cached), np.float32)

    def decode(self, model, latents):
        """(batch, steps, latent_dim) high-level latents → audio through the upstream."""
        trajectory = self.traced(model, "decode", model.trajectory, tf.TensorSpec(
            (None, None, self.config.latent_dim), tf.float32))
        return self.upstream_family.decode_in_pieces(self.upstream_model, np.asarray(
            trajectory(np.asarray(latents, np.float32))))

    def exports(self, model):
        """The high-level encoder (what the upstream's cache holds → high-level means) and
        decoder (→ the trajectory's means), and the upstream's decoder."""
        dim = model.trajectory_dim
        given = keras.Input((None, model.encoder.inputs[0].shape[-1]), name="trajectory")
        means = keras.layers.Identity(name="latents")(
            model.encoder(given)[..., :model.latent_dim])
        points = keras.Input((None, self.config.latent_dim), name="latents")
        trajectory = keras.layers.Identity(name="trajectory")(model.decoder(points)[..., :dim])
        return {"encoder": keras.Model(given, means, name="encoder"),
                "decoder": keras.Model(points, trajectory, name="decoder"),
                "upstream_decoder": self.upstream_family.exports(self.upstream_model)["decoder"]}

    def export_notes(self, model):
        return {"upstream_steps_per_latent": self.compression,
                "samples_per_latent": self.latent_hop(),
                "encoder": ("the upstream's latent trajectory (batch, steps, channels), steps a "
                            f"multiple of {self.compression} -> (batch, steps / "
                            f"{self.compression}, {self.config.latent_dim}) means"
                            + ("; channels: the upstream posterior's means then log variances"
                               if self.config.objective == "posterior" else "")),
                "decoder": (f"latents (batch, points, {self.config.latent_dim}) -> the "
                            f"trajectory's means (batch, points * {self.compression}, "
                            f"{model.trajectory_dim}), for upstream_decoder"),
                "prior": "N(0, I) for every high-level latent"}
