"""`latent-diffusion`: a diffusion model over the latent trajectories of an upstream run with
continuous latents (`--upstream` a wave-vae run; a Gaussian spec-vae's works too): the
alternative to latent-vae as the prior of the hierarchical generator (issue 11 §5).

The denoiser is a fully convolutional 1-D network over (batch, steps, channels): dilated
residual units at one width (modules/conv.residual_unit), each told the noise level by a
learned projection of its sinusoidal embedding. It learns v-prediction (Salimans and Ho
2022, "Progressive distillation") under the cosine schedule (Nichol and Dhariwal 2021):
x_t = a x0 + s eps with a = cos(pi t / 2), s = sin(pi t / 2), target v = a eps - s x0, mean
squared error, t uniform in (0, 1]. Generation runs the deterministic DDIM sampler (Song et
al. 2021) from N(0, temperature²) noise (temperature 1.15 by default) in `denoise_steps`
steps (a control of generate) over the whole song's trajectory at once (the network is
convolutional, so any length), then decodes it through the upstream's decoder.

The targets are the upstream posterior's means as the cache holds them, standardized per
channel (`standardize`, the default) by the moments of every window trained on (the model's
LatentMoments): the schedule assumes unit scale, and a KL wave-vae's means are spread 0.2-1.3
by channel; generated trajectories are scaled back before decoding.

With `clock` (the default) the denoiser also hears the beat clock at each latent step
(modules/beat_clock.ClockEmbedding, as code-prior's Transformer and lstm-gan's networks):
training windows come with their beat grid from the corpus, and generation gives every song
a tempo (`--bpm`, or one of the training corpus's tempos) from a downbeat.

With `style` (an option) every block also hears the window's standardized mean over its
steps, a loop-level style vector: the denoiser's reach is under a second, so without it
every song averaged the corpus's character and songs were alike (loudness within ±0.2 LU
of each other, the corpus's loops ±1.5). Generation draws each song's style from the
Gaussian of the training windows' means (WindowStyles, counted in training) and keeps it
along the whole song."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..beats import MAX_BPM, MIN_BPM
from ..modules import replicas
from ..modules.beat_clock import ClockEmbedding, draw_corpus_tempos
from ..modules.conv import residual_unit
from . import register
from .base import (ConfigError, Control, Generates, MadeOfNetworks, OnLatents, RunningMeans,
                   LatentsConfig, tf)

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

EMBEDDING = 64   # sinusoidal features of the noise level


@dataclass
class LatentDiffusionConfig(LatentsConfig):
    window: int = 128            # upstream latent steps per training example (1 s through
    #                              a 128x wave-vae at 16 kHz)
    channels: int = 128          # the denoiser's width
    blocks: int = 3              # of dilated residual units (dilations 1, 3, 9 each)
    # what generate's --denoise-steps defaults to: DDIM's few steps shrink what it draws
    # (docs/compare.md, "latent-diffusion on standardized trajectories")
    denoise_steps: int = 50
    # the denoiser hears the beat clock at each step (generate then takes --bpm): without
    # it the chain's songs had no pulse (docs/compare.md, "latent-diffusion hears the beat
    # clock")
    clock: bool = True
    # the denoiser works on trajectories standardized per channel by the moments of the
    # training windows (LatentMoments), which the cosine schedule assumes; generation scales
    # its draws back
    standardize: bool = True
    # the denoiser hears its window's mean (standardized), a loop-level style: generation
    # draws one per song from the Gaussian of the training windows' (WindowStyles), so
    # songs differ from each other as the corpus's loops do. Off by default: as near the
    # corpus as without it over two wave-vaes, twice as far over a third (docs/compare.md,
    # "latent-diffusion hears a loop-level style")
    style: bool = False
    batch_size: int = 16
    learning_rate: float = 1e-3

    def validate(self):
        super().validate()
        if min(self.window, self.channels, self.blocks, self.denoise_steps) < 1:
            raise ConfigError("window, channels, blocks and denoise_steps must be >= 1")
        if self.style and not self.standardize:
            raise ConfigError("style needs standardize: true (a style is a standardized "
                              "window mean)")


@keras.saving.register_keras_serializable(package="musicrgan")
class NoiseLevelFeatures(layers.Layer):
    """(batch,) noise levels in [0, 1] → (batch, EMBEDDING) sines and cosines of t at
    frequencies from 1 to 1000 (the transformer's position features, for a level)."""

    def call(self, t):
        frequencies = ops.exp(ops.linspace(0.0, math.log(1000.0), EMBEDDING // 2))
        angles = ops.cast(ops.reshape(t, (-1, 1)), "float32") * frequencies[None] * math.pi
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def cosine_schedule(t):
    """(signal scale a, noise scale s) at noise level t: a² + s² = 1."""
    return ops.cos(0.5 * math.pi * t), ops.sin(0.5 * math.pi * t)


def denoiser(dim: int, channels: int, blocks: int,
             clock: tuple[int, int] | None = None, style: bool = False) -> keras.Model:
    """(noisy (batch, steps, dim), t (batch,)) → v-prediction (batch, steps, dim). With
    `clock` (hop, rate) it also takes beats (batch, 2) [tempo, beat position where the first
    step starts] and hears the beat clock at each step (layer "clock"); with `style`, last,
    a style (batch, dim) that every block hears with the noise level."""
    noisy = keras.Input((None, dim), name="noisy")
    t = keras.Input((), name="noise_level")
    inputs = [noisy, t]
    told = NoiseLevelFeatures(name="level_features")(t)
    if style:
        style_input = keras.Input((dim,), name="style")
        told = layers.Concatenate(name="level_and_style")([told, style_input])
    level = layers.Dense(channels, activation="silu", name="level_in")(told)
    h = layers.Conv1D(channels, 3, padding="same", name="den_in")(noisy)
    if clock is not None:
        beats = keras.Input((2,), name="beats")
        inputs.append(beats)
        h = layers.Add(name="clocked")([h, ClockEmbedding(*clock, channels, name="clock")(
            noisy, beats)])
    for b in range(blocks):
        told = layers.Dense(channels, name=f"level_{b}")(level)
        h = layers.Add(name=f"told_{b}")([h, layers.Reshape((1, channels))(told)])
        for d in (1, 3, 9):
            h = residual_unit(h, channels, d, f"den{b}_res{d}")
    h = layers.LeakyReLU(0.2)(h)
    if style:
        inputs.append(style_input)
    return keras.Model(inputs, layers.Conv1D(dim, 3, padding="same", name="den_out")(h),
                       name="denoiser")


class CountedSums(layers.Layer):
    """A count and sums (SUMS: name → shape for `dim` channels) over everything a model
    trains on, added as batches come ("mean" aggregation: the mean of old + replicas x this
    replica's sums adds every replica's, as ClockEmbedding counts tempos)."""
    SUMS: dict = {}

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.count = self._sum("count", ())
        for name, shape in self.SUMS.items():
            setattr(self, name, self._sum(name, shape(self.dim)))
        # made whole here (no input shape to wait for): a model under a tf.distribute
        # strategy would otherwise be called on a batch to build it, before training
        self.built = True

    def _sum(self, name, shape):
        return self.add_weight(shape=shape, initializer="zeros", trainable=False, name=name,
                               aggregation="mean")

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="musicrgan")
class LatentMoments(CountedSums):
    """Per-channel mean and standard deviation of every trajectory window trained on, counted
    as they come (as the clock counts tempos): what standardizes the denoiser's targets and
    scales generated trajectories back."""
    SUMS = {"total": lambda dim: (dim,), "squares": lambda dim: (dim,)}

    def observe(self, x):
        rows = ops.reshape(ops.cast(x, "float32"), (-1, self.dim))
        n = replicas.count()
        self.count.assign_add(ops.cast(ops.shape(rows)[0], "float32") * n)
        self.total.assign_add(ops.sum(rows, axis=0) * n)
        self.squares.assign_add(ops.sum(ops.square(rows), axis=0) * n)

    def moments(self):
        count = ops.maximum(self.count, 1.0)
        mean = self.total / count
        return mean, ops.sqrt(ops.maximum(self.squares / count - ops.square(mean), 1e-6))

    def standardized(self, x):
        mean, std = self.moments()
        return (x - mean) / std


@keras.saving.register_keras_serializable(package="musicrgan")
class WindowStyles(CountedSums):
    """The Gaussian of the trajectory windows' means (each window's mean over its steps, a
    (dim,) style), counted as they come: count, sum and sum of outer products; generation
    draws songs' styles from it."""
    SUMS = {"total": lambda dim: (dim,), "products": lambda dim: (dim, dim)}

    def observe(self, x):
        means = ops.mean(ops.cast(x, "float32"), axis=1)
        n = replicas.count()
        self.count.assign_add(ops.cast(ops.shape(means)[0], "float32") * n)
        self.total.assign_add(ops.sum(means, axis=0) * n)
        self.products.assign_add(ops.matmul(ops.transpose(means), means) * n)

    def gaussian(self):
        """(mean (dim,), covariance (dim, dim)) of the window means, as numpy."""
        count = max(float(self.count), 1.0)
        mean = np.asarray(self.total, np.float64) / count
        return mean, np.asarray(self.products, np.float64) / count - np.outer(mean, mean)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, covariance = self.gaussian()
        return rng.multivariate_normal(mean, covariance, size=n, method="eigh").astype(
            np.float32)


@keras.saving.register_keras_serializable(package="musicrgan")
class LatentDiffusionModel(RunningMeans, MadeOfNetworks, keras.Model):
    """The denoiser with the v-prediction train step; with `standardize`, on trajectories
    standardized by their moments (`moments`, counted in training); with `style`, the
    denoiser hears each window's standardized mean, whose Gaussian `styles` counts."""
    NETWORKS = ("denoiser",)
    SETTINGS = ("dim", "standardize", "style")

    def __init__(self, denoiser, dim, standardize=False, style=False, **kwargs):
        super().__init__(**kwargs)
        self.denoiser, self.dim = denoiser, dim
        # (False by default: models saved before standardizing or styles load as they were)
        self.standardize, self.style = standardize, style
        self.moments = LatentMoments(dim, name="moments") if standardize else None
        self.styles = WindowStyles(dim, name="styles") if style else None
        self.start_tracking(("loss",))

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs):
        return self.denoiser(inputs)

    def trajectories(self, standardized):
        """Generated (standardized) trajectories at the upstream's scale."""
        if not self.standardize:
            return standardized
        mean, std = (np.asarray(v) for v in self.moments.moments())
        return standardized * std + mean

    def draw_styles(self, n: int, seed: int) -> np.ndarray:
        """(n, dim) standardized styles drawn from the training windows' Gaussian."""
        mean, std = (np.asarray(v) for v in self.moments.moments())
        return (self.styles.draw(n, np.random.default_rng([seed, 47])) - mean) / std

    def _loss(self, cached, seed, training):
        """`cached` the latent windows (batch, steps, channels), or (windows, beats) for a
        denoiser with a clock."""
        beats = ()
        if isinstance(cached, (tuple, list)):
            cached, beats = cached[0], tuple(cached[1:])
        x0 = cached[..., :self.dim]
        if self.standardize:
            if training:
                self.moments.observe(x0)
                if self.style:
                    self.styles.observe(x0)
            x0 = self.moments.standardized(x0)
        style = (ops.mean(x0, axis=1),) if self.style else ()
        batch = ops.shape(x0)[0]
        t = tf.random.stateless_uniform((batch,), seed, 1e-3, 1.0)
        eps = tf.random.stateless_normal(ops.shape(x0), seed + 1)
        a, s = (ops.reshape(v, (-1, 1, 1)) for v in cosine_schedule(t))
        v = self.denoiser([a * x0 + s * eps, t, *beats, *style], training=training)
        return ops.mean(ops.square(v - (a * eps - s * x0)))

    def train_step(self, cached):
        seed = replicas.step_seed(self.optimizer, 41)
        with tf.GradientTape() as tape:
            loss = self._loss(cached, seed, True)
            share = replicas.share(loss)
        weights = self.denoiser.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(share, weights), weights))
        return self._track(loss)

    def test_step(self, cached):
        # the same noise levels and noise for every validation pass: epochs compare
        return self._track(self._loss(cached, ops.convert_to_tensor([0, 43], "int32"), False))


def ddim(denoise, noise, steps: int):
    """The deterministic DDIM sampler under the cosine schedule: `noise` (at t = 1) →
    x0 in `steps` calls of `denoise(x_t, t) → v`."""
    x = noise
    levels = np.linspace(1.0, 0.0, steps + 1, dtype=np.float32)
    for here, there in zip(levels[:-1], levels[1:]):
        a, s = (float(v) for v in cosine_schedule(np.float32(here)))
        v = denoise(x, np.full((x.shape[0],), here, np.float32))
        x0, eps = a * x - s * v, s * x + a * v
        a_next, s_next = (float(v) for v in cosine_schedule(np.float32(there)))
        x = a_next * x0 + s_next * eps
    return x


@register
class LatentDiffusion(OnLatents, Generates):
    name = "latent-diffusion"
    Config = LatentDiffusionConfig
    # the start noise's scale: a trained denoiser's 50-step draws spread 0.87 of the
    # training trajectories' std, 1.15 brings them to 0.99, and the songs came 1.7-2.4x
    # nearer the corpus (docs/compare.md, "A compare trains its whole budget")
    default_temperature = 1.15

    def accepts(self, family):
        if family.codebook_size():
            return (f"its latents are codes of a codebook ({family.name}'s): latent-diffusion "
                    "denoises continuous trajectories (a wave-vae run's)")
        return None

    @property
    def uses_beats(self):
        return self.config.clock

    def window(self):
        return self.config.window

    def examples(self, cached, beats=None):
        return cached if beats is None else (cached, beats)

    def controls(self):
        controls = (Control("denoise_steps", "sampler steps from noise to a trajectory (more: "
                            "slower, usually cleaner; default: the run's config)", 1, 1000,
                            "K"),)
        if self.config.clock:
            controls += (Control("bpm", "tempo of every song; default: one of the training "
                                        "corpus's tempos per song", MIN_BPM, MAX_BPM, "BPM"),)
        return controls

    def _tempos(self, model, request):
        return draw_corpus_tempos(model.denoiser.get_layer("clock").tempo_counts, request.n,
                                  request.seed, request.controls.get("bpm"))

    def describe(self, model, request):
        if not self.config.clock:
            return {}
        return {"bpm": [round(float(b), 2) for b in self._tempos(model, request)]}

    def build(self):
        c = self.config
        dim = self.upstream_family.latent_channels()
        clock = (self.upstream_family.latent_hop(), self.rate) if c.clock else None
        model = LatentDiffusionModel(denoiser(dim, c.channels, c.blocks, clock, c.style),
                                     dim, c.standardize, c.style, name="latent_diffusion")
        model.build()
        self.compile(model)
        return model

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(self.config.learning_rate, clipnorm=1.0))

    def generate(self, model, request, progress=None):
        samples = request.samples(self.rate)
        audio = self.upstream_family.decode_in_pieces(self.upstream_model,
                                                      self.draw_trajectories(model, request))
        if progress:
            progress(samples)
        return self.finished(audio, samples)

    def draw_trajectories(self, model, request) -> np.ndarray:
        """The songs' latent trajectories (n, steps, dim) at the upstream's scale: DDIM from
        noise, each song at its tempo and in its style."""
        steps = -(-request.samples(self.rate) // self.upstream_family.latent_hop())
        temperature = request.temperature if request.temperature > 0 else 1.0
        noise = temperature * np.random.default_rng(request.seed).standard_normal(
            (request.n, steps, model.dim)).astype(np.float32)
        denoise_steps = int(request.controls.get("denoise_steps", self.config.denoise_steps))
        signature = [tf.TensorSpec((None, None, model.dim), tf.float32),
                     tf.TensorSpec((None,), tf.float32)]
        told = ()   # what the denoiser hears beside x and t, in its inputs' order
        if self.config.clock:  # each song from a downbeat at its tempo
            signature.append(tf.TensorSpec((None, 2), tf.float32))
            told += (np.stack([self._tempos(model, request), np.zeros(request.n)],
                              axis=1).astype(np.float32),)
        if model.style:  # each song a style of its own, kept along the whole song
            signature.append(tf.TensorSpec((None, model.dim), tf.float32))
            told += (model.draw_styles(request.n, request.seed),)
        denoise = self.traced(model, "denoise", lambda *inputs: model.denoiser(list(inputs)),
                              *signature)
        return model.trajectories(
            ddim(lambda x, t: np.asarray(denoise(x, t, *told)), noise, denoise_steps))

    def exports(self, model):
        """The denoiser (one call of the sampler) and the upstream's decoder."""
        return {"denoiser": model.denoiser,
                "decoder": self.upstream_family.exports(self.upstream_model)["decoder"]}

    def export_notes(self, model):
        notes = {}
        if self.config.clock:
            low, high = (float(v) for v in
                         np.asarray(model.denoiser.get_layer("clock").tempo_range))
            notes["beats"] = ("(batch, 2): the tempo in BPM and the beat position (0: on a "
                              "downbeat) where the trajectory's first step starts; trained "
                              f"on {low:.1f}-{high:.1f} BPM")
        if model.standardize:
            mean, std = (np.asarray(v).round(5).tolist() for v in model.moments.moments())
            notes["standardized"] = ("the sampler's x0 is standardized: x0 * std + mean per "
                                     "channel before the decoder")
            notes |= {"mean": mean, "std": std}
        if model.style:
            style_mean, covariance = model.styles.gaussian()
            notes["style"] = ("(batch, channels): the song's style, a standardized window "
                              "mean ((m - mean) / std); draw m from N(style_mean, "
                              "style_covariance), one per song")
            notes |= {"style_mean": style_mean.round(5).tolist(),
                      "style_covariance": covariance.round(6).tolist()}
        clocked = ", beats (batch, 2)" if self.config.clock else ""
        clocked += ", style (batch, channels)" if model.style else ""
        return notes | {"samples_per_step": self.upstream_family.latent_hop(),
                "denoiser": (f"(noisy (batch, steps, {model.dim}), noise_level (batch,)"
                             f"{clocked}) -> v; schedule a = cos(pi t / 2), "
                             "s = sin(pi t / 2)"),
                "sampler": (f"DDIM: x = N(0, I) at t = 1; for t from 1 to 0 in "
                            f"{self.config.denoise_steps} equal steps: v = denoiser(x, t), "
                            "x0 = a x - s v, eps = s x + a v, x = a' x0 + s' eps at the next t"),
                "decoder": "x0 (batch, steps, channels) -> audio (batch, steps * "
                           "samples_per_step)"}
