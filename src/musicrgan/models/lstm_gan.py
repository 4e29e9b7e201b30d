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
    # the generator hears a beat clock (the phase of bar, beat and 16th note) and the
    # discriminator judges the audio together with it, against each training window's beat
    # grid (beats.py): the pulse has to fall where the clock says
    beat_clock: bool = True
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


CLOCK_FEATURES = 6


def beat_clock(beats, steps, hop, centre, rate):
    """(batch, 2) [tempo in BPM, beat position at the window's first sample] → (batch,
    steps, 6): sin and cos of the phase of the bar (4 beats), the beat and the 16th note at
    sample `centre + i * hop` of the window, for i < steps."""
    times = (ops.cast(ops.arange(steps), "float32") * hop + centre) / rate
    position = beats[:, 1:2] + times[None, :] * beats[:, 0:1] / 60.0
    angles = 2.0 * np.pi * ops.stack([position / 4.0, position, position * 4.0], axis=-1)
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="musicrgan")
class LSTMGAN(keras.Model):
    """Generator and discriminator with their own optimizers and train_step."""

    def __init__(self, generator, discriminator, frame_length, noise_dim, feature_matching=1.0,
                 beat_clock=False, rate=16000, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.frame_length, self.noise_dim = frame_length, noise_dim
        self.feature_matching = feature_matching
        self.beat_clock, self.rate = beat_clock, rate
        # lowest and highest tempo of the training windows (saved with the model), so
        # generation draws tempos the model has heard
        self.tempo_range = self.add_weight(
            shape=(2,), initializer=keras.initializers.Constant([np.inf, -np.inf]),
            trainable=False, name="tempo_range")
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

    def generate_audio(self, noise, beats=None, training=False):
        """Noise (batch, steps, noise_dim) [+ beats (batch, 2)] → (batch, samples)."""
        if self.beat_clock:
            steps = ops.shape(noise)[1]
            clock = beat_clock(beats, steps, self.frame_length, self.frame_length / 2, self.rate)
            noise = ops.concatenate([noise, clock], axis=-1)
        frames = self.generator(noise, training=training)
        return ops.reshape(frames, (ops.shape(frames)[0], -1))

    def critic(self, audio, beats=None, training=False):
        spectra = self.spectrum(audio)
        if self.beat_clock:
            hop = self.frame_length // 2
            clock = beat_clock(beats, ops.shape(spectra)[1], hop, self.frame_length / 2, self.rate)
            spectra = ops.concatenate([spectra, clock], axis=-1)
        return self.discriminator(spectra, training=training)

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

    def train_step(self, data):
        real, beats = data if self.beat_clock else (data, None)
        batch = tf.shape(real)[0]
        steps = tf.shape(real)[1] // self.frame_length
        with tf.GradientTape() as tape:
            fake = self.generate_audio(self._noise(batch, steps), beats, training=True)
            d_real = self.critic(real, beats, training=True)
            d_fake = self.critic(fake, beats, training=True)
            d_loss = ops.mean(ops.relu(1.0 - d_real)) + ops.mean(ops.relu(1.0 + d_fake))
            if self.beat_clock:
                # real audio heard against a clock a quarter to three quarters of a beat off
                # counts as fake (the matching-aware discriminator of Reed et al. 2016): the
                # discriminator has to check where the beats fall, not only how it sounds
                shift = tf.random.uniform((batch, 1), 0.25, 0.75)
                wrong = ops.concatenate([beats[:, :1], beats[:, 1:] + shift], axis=1)
                d_wrong = self.critic(real, wrong, training=True)
                d_loss = d_loss + ops.mean(ops.relu(1.0 + d_wrong))
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.critic_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        if self.beat_clock:
            self.tempo_range.assign(ops.stack([
                ops.minimum(self.tempo_range[0], ops.min(beats[:, 0])),
                ops.maximum(self.tempo_range[1], ops.max(beats[:, 0]))]))

        with tf.GradientTape() as tape:
            fake = self.generate_audio(self._noise(batch, steps), beats, training=True)
            d_fake_g = self.critic(fake, beats, training=True)
            spectral = self._spectral_distance(real, fake)
            g_loss = -ops.mean(d_fake_g) + self.feature_matching * spectral
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))

        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("spectral", spectral),
                            ("d_real", ops.mean(d_real)), ("d_fake", ops.mean(d_fake))):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        real, beats = data if self.beat_clock else (data, None)
        steps = tf.shape(real)[1] // self.frame_length
        # the same noise at every validation, so epochs are compared on equal terms
        noise = tf.random.stateless_normal((tf.shape(real)[0], steps, self.noise_dim), [0, 0])
        fake = self.generate_audio(noise, beats)
        spectral = self._spectral_distance(real, fake)
        self.trackers["spectral"].update_state(spectral)
        # "loss" is what val_loss, best.keras and early stopping read
        return {"loss": self.trackers["spectral"].result()}

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "frame_length": self.frame_length, "noise_dim": self.noise_dim,
                "feature_matching": self.feature_matching,
                "beat_clock": self.beat_clock, "rate": self.rate}

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

    @property
    def uses_beats(self):
        return self.config.beat_clock

    def window(self):
        return self.config.frame * self.config.seq_len

    def examples(self, windows, beats=None):
        return windows if beats is None else (windows, beats)

    def build(self):
        c = self.config
        clock = CLOCK_FEATURES if c.beat_clock else 0
        noise = keras.Input((None, c.noise_dim + clock), name="noise")
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
        spectra = keras.Input((None, bins + clock), name="log_spectra")
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
                        c.beat_clock, self.rate, name="lstm_gan")
        model.build((None, None, c.noise_dim + clock))
        self.compile(model)
        return model

    def compile(self, model):
        c = self.config
        model.compile(generator_optimizer=keras.optimizers.Adam(c.learning_rate, 0.5, 0.9),
                      critic_optimizer=keras.optimizers.Adam(c.critic_learning_rate, 0.5, 0.9))

    def tempos(self, model, n, seed, bpm=None):
        """Tempo of each of n clips: `bpm`, or drawn from the training windows' range."""
        if bpm:
            return np.full(n, float(bpm), np.float32)
        low, high = np.asarray(model.tempo_range)
        if not low <= high:   # never trained
            low = high = 120.0
        return np.random.default_rng(seed).uniform(low, high, n).astype(np.float32)

    def generate(self, model, n, samples, prime, temperature, seed, progress=None, bpm=None):
        steps = int(np.ceil(samples / self.config.frame))
        scale = temperature if temperature > 0 else 1.0
        noise = scale * tf.random.stateless_normal((n, steps, self.config.noise_dim), [seed, 0])
        beats = None
        if self.config.beat_clock:
            beats = np.stack([self.tempos(model, n, seed, bpm), np.zeros(n, np.float32)], axis=1)
        audio = np.asarray(model.generate_audio(noise, beats)).reshape(n, -1)
        if progress:
            progress(samples)
        return audio[:, :samples].astype(np.float32)
