"""`lstm-gan` (musicrgan's gan): an LSTM generator from a noise sequence to a sequence of
waveform frames, against an LSTM discriminator that reads the log spectra of half-overlapping
frames (so it hears the joins between generated frames too).

The original never trained. This one uses the hinge loss, spectral normalization in the
discriminator, and a feature-matching term for the generator (after Salimans et al. 2016):
the distance between real and generated log-spectrum statistics (per-band mean, and per-band
standard deviation over time) at the frame length and at 4x it. It is also the validation
loss: how far the generated sound's spectrum and its movement are from the corpus's.

The generator turns each LSTM step into a frame of samples with transposed convolutions
(`upsampler: conv`, as MelGAN's generator) or, as the original did, one Dense layer
(`upsampler: dense`). On the built-in corpus after 3 CPU minutes, conv with two-resolution
mean+std matching reached a Fréchet distance of 158 (spectral flatness and centroid inside
the corpus's range); dense with mean-only matching at one resolution, 348.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import frame
from . import register
from .base import ConfigError, Family, TrainConfig, tf

import keras  # noqa: E402
from keras import ops  # noqa: E402


@dataclass
class LSTMGANConfig(TrainConfig):
    frame: int = 256            # samples per generated frame
    seq_len: int = 64           # frames per training window (1 s at 16 kHz: long enough to hear a beat)
    noise_dim: int = 32
    hidden: int = 128
    critic_hidden: int = 128
    learning_rate: float = 2e-3
    critic_learning_rate: float = 2e-3
    feature_matching: float = 10.0    # weight of the spectral feature-matching term
    # how LSTM states become samples: "dense" (one Dense layer per frame, the original's
    # way) or "conv" (transposed convolutions, 4x per layer, as MelGAN's generator)
    upsampler: str = "conv"
    batch_size: int = 16

    def validate(self):
        super().validate()
        if self.frame < 16 or self.frame % 2 or min(self.seq_len, self.noise_dim, self.hidden,
                                                     self.critic_hidden) < 1:
            raise ConfigError("frame must be an even number >= 16; seq_len, noise_dim, hidden "
                              "and critic_hidden >= 1")
        if self.upsampler not in ("dense", "conv"):
            raise ConfigError(f"upsampler must be dense or conv, got {self.upsampler!r}")
        if self.upsampler == "conv" and (self.frame % 64 or self.frame < 64):
            raise ConfigError("upsampler conv needs frame to be a multiple of 64")


@keras.saving.register_keras_serializable(package="musicrgan")
class LogSpectrum(keras.layers.Layer):
    """(batch, samples) → (batch, frames, frame // 2 + 1) log magnitudes of Hann-windowed
    frames at 50 % hop."""

    def __init__(self, frame_length: int, **kwargs):
        super().__init__(**kwargs)
        self.frame_length = frame_length

    def call(self, audio):
        frames = frame(audio, self.frame_length, self.frame_length // 2)
        frames = frames * np.hanning(self.frame_length).astype("float32")
        real, imag = ops.rfft(frames)
        return ops.log(ops.sqrt(real * real + imag * imag + 1e-10) + 1e-3)

    def get_config(self):
        return {**super().get_config(), "frame_length": self.frame_length}


@keras.saving.register_keras_serializable(package="musicrgan")
class LSTMGAN(keras.Model):
    """Generator and discriminator with their own optimizers and train_step."""

    def __init__(self, generator, discriminator, frame_length, noise_dim, feature_matching=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.frame_length, self.noise_dim = frame_length, noise_dim
        self.feature_matching = feature_matching
        self.spectrum = LogSpectrum(frame_length, name="spectrum")
        # feature matching also at 4x the frame length: bins of 16 Hz at 16 kHz resolve a kick
        self.fine_spectrum = LogSpectrum(4 * frame_length, name="fine_spectrum")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "g_loss", "spectral", "d_real", "d_fake")}

    def build(self, input_shape=None):
        # generator and discriminator are functional models, built when made
        self.built = True

    def call(self, noise):
        frames = self.generator(noise)
        return ops.reshape(frames, (ops.shape(frames)[0], -1))

    def compile(self, generator_optimizer=None, critic_optimizer=None, **kwargs):
        super().compile(optimizer=generator_optimizer, **kwargs)
        self.critic_optimizer = critic_optimizer
        # Build both optimizers now, so a checkpoint's optimizer state has somewhere to load.
        self.optimizer.build(self.generator.trainable_variables)
        self.critic_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        return {"generator_optimizer": keras.saving.serialize_keras_object(self.optimizer),
                "critic_optimizer": keras.saving.serialize_keras_object(self.critic_optimizer)}

    def compile_from_config(self, config):
        self.compile(
            generator_optimizer=keras.saving.deserialize_keras_object(config["generator_optimizer"]),
            critic_optimizer=keras.saving.deserialize_keras_object(config["critic_optimizer"]))

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _noise(self, batch, steps):
        return tf.random.normal((batch, steps, self.noise_dim))

    def _spectral_distance(self, real, fake):
        """Distance between the statistics of real and generated log spectra at two
        resolutions: the mean over batch and time (the average spectrum) and the standard
        deviation over time (how much each band moves: hits and gaps against a steady hum)."""
        total = 0.0
        for spectrum in (self.spectrum, self.fine_spectrum):
            r, f = spectrum(real), spectrum(fake)
            total += ops.mean(ops.abs(ops.mean(r, axis=(0, 1)) - ops.mean(f, axis=(0, 1))))
            total += ops.mean(ops.abs(ops.mean(ops.std(r, axis=1), axis=0)
                                      - ops.mean(ops.std(f, axis=1), axis=0)))
        return total / 2

    def train_step(self, real):
        batch = tf.shape(real)[0]
        steps = tf.shape(real)[1] // self.frame_length
        with tf.GradientTape() as tape:
            fake = self(self._noise(batch, steps), training=True)
            d_real = self.discriminator(self.spectrum(real), training=True)
            d_fake = self.discriminator(self.spectrum(fake), training=True)
            d_loss = ops.mean(ops.relu(1.0 - d_real)) + ops.mean(ops.relu(1.0 + d_fake))
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.critic_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        with tf.GradientTape() as tape:
            fake = self(self._noise(batch, steps), training=True)
            d_fake_g = self.discriminator(self.spectrum(fake), training=True)
            spectral = self._spectral_distance(real, fake)
            g_loss = -ops.mean(d_fake_g) + self.feature_matching * spectral
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("spectral", spectral),
                            ("d_real", ops.mean(d_real)), ("d_fake", ops.mean(d_fake))):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, real):
        steps = tf.shape(real)[1] // self.frame_length
        fake = self(self._noise(tf.shape(real)[0], steps), training=False)
        spectral = self._spectral_distance(real, fake)
        self.trackers["spectral"].update_state(spectral)
        # "loss" is what val_loss, best.keras and early stopping read
        return {"loss": self.trackers["spectral"].result()}

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "frame_length": self.frame_length, "noise_dim": self.noise_dim,
                "feature_matching": self.feature_matching}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)


@register
class LSTMGANFamily(Family):
    name = "lstm-gan"
    Config = LSTMGANConfig
    takes_prime = False

    def window(self):
        return self.config.frame * self.config.seq_len

    def examples(self, windows):
        return windows

    def build(self):
        c = self.config
        noise = keras.Input((None, c.noise_dim), name="noise")
        h = keras.layers.LSTM(c.hidden, return_sequences=True, name="g_lstm")(noise)
        if c.upsampler == "dense":
            h = keras.layers.Dense(c.hidden, activation="relu", name="g_dense")(h)
            frames = keras.layers.Dense(c.frame, activation="tanh", name="g_frames")(h)
        else:
            # frame // 64 steps of 64 channels per frame, then three 4x transposed convolutions
            h = keras.layers.Dense(c.frame, name="g_dense")(h)
            h = keras.layers.Reshape((-1, 64), name="g_unfold")(h)
            for i, channels in enumerate((32, 16, 8)):
                h = keras.layers.LeakyReLU(0.2)(h)
                h = keras.layers.Conv1DTranspose(channels, 8, strides=4, padding="same",
                                                 name=f"g_up{i}")(h)
            h = keras.layers.LeakyReLU(0.2)(h)
            frames = keras.layers.Conv1D(1, 7, padding="same", activation="tanh", name="g_out")(h)
        generator = keras.Model(noise, frames, name="generator")

        bins = c.frame // 2 + 1
        spectra = keras.Input((None, bins), name="log_spectra")
        sn = keras.layers.SpectralNormalization
        # Dense acts on the last axis of every frame; TimeDistributed would do the same but,
        # with a known number of frames, unrolls into one copy per frame (a 60 s trace)
        h = sn(keras.layers.Dense(c.critic_hidden), name="d_embed")(spectra)
        h = keras.layers.LeakyReLU(0.2)(h)
        h = keras.layers.LSTM(c.critic_hidden, return_sequences=True, name="d_lstm")(h)
        score = sn(keras.layers.Dense(1), name="d_score")(h)
        score = keras.layers.GlobalAveragePooling1D(name="d_mean")(score)
        discriminator = keras.Model(spectra, score, name="discriminator")

        model = LSTMGAN(generator, discriminator, c.frame, c.noise_dim, c.feature_matching,
                        name="lstm_gan")
        model.build((None, None, c.noise_dim))
        self.compile(model)
        return model

    def compile(self, model):
        c = self.config
        model.compile(generator_optimizer=keras.optimizers.Adam(c.learning_rate, 0.5, 0.9),
                      critic_optimizer=keras.optimizers.Adam(c.critic_learning_rate, 0.5, 0.9))

    def generate(self, model, n, samples, prime, temperature, seed, progress=None):
        steps = int(np.ceil(samples / self.config.frame))
        scale = temperature if temperature > 0 else 1.0
        noise = scale * tf.random.stateless_normal((n, steps, self.config.noise_dim), [seed, 0])
        audio = np.asarray(model.generator(noise, training=False)).reshape(n, -1)
        if progress:
            progress(samples)
        return audio[:, :samples].astype(np.float32)
