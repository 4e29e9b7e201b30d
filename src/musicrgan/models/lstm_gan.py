"""`lstm-gan` (musicrgan's gan): an LSTM generator from a noise sequence to a sequence of
waveform frames, against an LSTM discriminator that reads the log spectra of half-overlapping
frames (so it hears the joins between generated frames too).

The original never trained. This one uses the hinge loss, spectral normalization in the
discriminator, and a feature-matching term for the generator (after Salimans et al. 2016):
the distance between real and generated log-spectrum statistics (per band: mean, standard
deviation over time, log mean power) at the frame length and at 4x it.

Both networks hear a beat clock (`beat_clock`): the phase of bar, beat and 16th note at
each frame, from the training window's beat grid (beats.py). The discriminator must also
call real audio against a shifted clock fake, so the generator has to put the pulse where
the clock says, and `generate --bpm` sets the tempo. Without the clock, 3 CPU minutes gave
no steady pulse (tempo strength 0.08; the corpus's 0.42); with it, 0.26-0.57.

Generation uses a moving average of the generator's weights, and `val_frechet` (Fréchet
distance of its clips to the test split, each epoch) picks best.keras.

The generator turns each LSTM step into a frame of samples with transposed convolutions
(`upsampler: conv`, as MelGAN's generator) or, as the original did, one Dense layer
(`upsampler: dense`). On the built-in corpus after 3 CPU minutes, conv with two-resolution
mean+std matching reached a Fréchet distance of 158; dense with mean-only matching at one
resolution, 348 (both before the clock; with it, 153 at full noise, 134 at 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..modules import replicas
from ..modules.beat_clock import (CLOCK_FEATURES, beat_clock, draw_tempos, tempo_range_weight,
                                  widen_tempo_range)
from ..modules.features import remove_drift
from ..modules.harmonic import HarmonicOscillators, controls_per_voice
from ..modules.spectral import LogSpectrum, ValidationDistance, band_statistics, \
    band_statistics_distance, frame_moments_distance, log_mel_frames, mel_density_weights
from ..metrics import N_MELS, mel_filterbank
from ..validation import FrechetValidation
from . import register
from ..beats import MAX_BPM, MIN_BPM
from .base import (ConfigError, Control, Generates, RunningMeans, TrainConfig, MadeOfNetworks,
                   WithCritic, check_whole_numbers, tf)

import keras  # noqa: E402
from keras import ops  # noqa: E402


@dataclass
class LSTMGANConfig(TrainConfig):
    frame: int = 256            # samples per generated frame
    seq_len: int = 64           # frames per training window (1 s at 16 kHz: long enough to hear a beat)
    noise_dim: int = 32
    hidden: int = 128
    critic_hidden: int = 128
    # the discriminator's LSTM reads one step per `critic_stride` half-overlapping spectrum
    # frames (a strided convolution over their embeddings first); 1: one step per frame.
    # 2 makes a step ~25 % cheaper but learned slower per step (val_frechet 186 against 150
    # after 7 epochs) and lost the pulse (grid alignment 0.27 against 0.68): docs/compare.md
    critic_stride: int = 1
    # the discriminator's views: frame lengths, in generated frames, of the log spectra it
    # judges (each a judge of its own, their hinge losses averaged). 1 alone (62.5 Hz bins at
    # 16 kHz) cannot resolve a bass line's harmonics from noise; [1, 4] adds 15.6 Hz bins:
    # in 5 minutes it did not pay (fewer, dearer steps): docs/compare.md, "A finer view"
    critic_views: list = field(default_factory=lambda: [1])
    learning_rate: float = 2e-3
    critic_learning_rate: float = 2e-3
    feature_matching: float = 10.0    # weight of the spectral feature-matching term
    # how feature matching weighs the spectra's bins: "linear" (each bin alike: 4-8 kHz is
    # half the weight, 300-2500 Hz, where the corpus's acid line is, 28 %) or "mel" (by the
    # mel scale's density: 24 % and 46 %)
    feature_weighting: str = "linear"
    # weight of a second feature-matching term: the mean and covariance of the batch's
    # log-mel frames (64 bands of the 4x-frame spectrum), real against generated. Per-band
    # statistics miss how bands move together and how often a band drops out. It shares
    # its embedding with evaluate's Fréchet distance, so its gain there overstates what it
    # buys (docs/compare.md, "Moments and harmonics"); 0: off
    moment_matching: float = 0.0
    # the generator hears a beat clock (the phase of bar, beat and 16th note) and the
    # discriminator judges the audio together with it, against each training window's beat
    # grid (beats.py): the pulse has to fall where the clock says
    beat_clock: bool = True
    # generation and validation use an exponential moving average of the generator's weights
    # (as BigGAN and StyleGAN do): the trained generator swings from step to step as the two
    # networks take turns; the average does not. 0: the generator as trained.
    generator_average: float = 0.99
    # how LSTM states become samples: "dense" (one Dense layer per frame, the original's
    # way) or "conv" (transposed convolutions, 4x per layer, as MelGAN's generator)
    upsampler: str = "conv"
    # channels of the conv upsampler's three 4x transposed convolutions (the last one runs
    # at the sample rate); [64, 32, 16] did not pay in 5 minutes (docs/compare.md)
    upsampler_channels: list = field(default_factory=lambda: [32, 16, 8])
    # harmonic oscillators beside the upsampler (modules/harmonic.py): per frame, each of
    # `harmonic_voices` voices gets a fundamental, a loudness and a spread over this many
    # harmonics from the LSTM, and its sines are added to the upsampler's audio; 0: none.
    # In 5 minutes it did not pay (docs/compare.md, "Moments and harmonics")
    harmonics: int = 0
    harmonic_voices: int = 1
    # the generator's audio passes a high-pass that removes DC and sub-audio drift (a moving
    # average over this many samples, twice, subtracted; 0: none). Without it, 5 minutes of
    # training left clips with a DC offset of 0.19 and 64 % of their power below 30 Hz:
    # peaks at full scale, 4 LU quieter than the corpus, and a low band the corpus lacks.
    drift_filter: int = 512
    batch_size: int = 16
    # a GAN's distance to the corpus swings from epoch to epoch as the two networks take
    # turns (measured: the best epoch of a 3-minute run came 1 to 5 epochs before a better
    # one); 5 epochs stopped runs early
    patience: int = 10

    def validate(self):
        super().validate()
        if self.frame < 16 or self.frame % 2 or min(self.seq_len, self.noise_dim, self.hidden,
                                                     self.critic_hidden, self.critic_stride) < 1:
            raise ConfigError("frame must be an even number >= 16; seq_len, noise_dim, hidden, "
                              "critic_hidden and critic_stride >= 1")
        check_whole_numbers("critic_views", self.critic_views)
        if self.frame * max(self.critic_views) > self.frame * self.seq_len:
            raise ConfigError(f"critic_views {self.critic_views}: a view longer than the "
                              f"training window ({self.seq_len} frames)")
        if self.moment_matching < 0:
            raise ConfigError(f"moment_matching must be >= 0, got {self.moment_matching}")
        if not self.generator_average < 1:
            raise ConfigError(f"generator_average must be below 1, got {self.generator_average}")
        if self.feature_weighting not in ("linear", "mel"):
            raise ConfigError("feature_weighting must be linear or mel, got "
                              f"{self.feature_weighting!r}")
        if self.upsampler not in ("dense", "conv"):
            raise ConfigError(f"upsampler must be dense or conv, got {self.upsampler!r}")
        if self.upsampler == "conv" and (self.frame % 64 or self.frame < 64):
            raise ConfigError("upsampler conv needs frame to be a multiple of 64")
        check_whole_numbers("upsampler_channels", self.upsampler_channels)
        if self.harmonics < 0 or self.harmonic_voices < 1:
            raise ConfigError("harmonics must be >= 0 and harmonic_voices >= 1, got "
                              f"{self.harmonics} and {self.harmonic_voices}")
        if len(self.upsampler_channels) != 3:
            raise ConfigError("upsampler_channels needs three numbers (one per 4x layer), "
                              f"got {self.upsampler_channels}")


@keras.saving.register_keras_serializable(package="musicrgan")
class LSTMGAN(WithCritic, RunningMeans, MadeOfNetworks, keras.Model):
    """Generator and discriminator with their own optimizers and train_step."""
    NETWORKS = ("generator", "discriminator")
    SETTINGS = ("frame_length", "noise_dim", "feature_matching", "beat_clock", "rate",
                "generator_average", "drift_filter", "critic_views", "feature_weighting",
                "moment_matching")

    def __init__(self, generator, discriminator, frame_length, noise_dim, feature_matching=1.0,
                 beat_clock=False, rate=16000, generator_average=0.0, drift_filter=0,
                 critic_views=(1,), feature_weighting="linear", moment_matching=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.generator_average = generator_average
        # the averaged generator: a copy that follows the trained one (saved with the model)
        self.average_generator = keras.models.clone_model(generator)
        self.average_generator.set_weights(generator.get_weights())
        self.frame_length, self.noise_dim = frame_length, noise_dim
        self.feature_matching = feature_matching
        self.beat_clock, self.rate = beat_clock, rate
        self.drift_filter = drift_filter
        self.tempo_range = tempo_range_weight(self)
        self.spectrum = LogSpectrum(frame_length, name="spectrum")
        # feature matching also at 4x the frame length: bins of 16 Hz at 16 kHz resolve a kick
        self.fine_spectrum = LogSpectrum(4 * frame_length, name="fine_spectrum")
        self.critic_views = tuple(critic_views)
        self.feature_weighting = feature_weighting
        self.feature_weights = None
        if feature_weighting == "mel":
            self.feature_weights = [mel_density_weights(spectrum.frame_length, rate)
                                    for spectrum in (self.spectrum, self.fine_spectrum)
                                    for _ in range(3)]
        self.moment_matching = moment_matching
        if moment_matching:
            self.mel_bank = mel_filterbank(rate, 4 * frame_length, N_MELS).T.astype("float32")
        known = {1: self.spectrum, 4: self.fine_spectrum}
        self.view_spectra = [known.get(k) or LogSpectrum(k * frame_length, name=f"view_{k}")
                             for k in self.critic_views]
        self.start_tracking(("d_loss", "g_loss", "spectral", "d_real", "d_fake")
                            + (("moments",) if moment_matching else ()))
        bands = [frame_length // 2 + 1] * 3 + [2 * frame_length + 1] * 3
        self.validation_distance = ValidationDistance(bands)

    def build(self, input_shape=None):
        # generator and discriminator are functional models, built when made
        self.built = True

    def count_params(self):
        """The weights that train: generator and discriminator (not the average's copy)."""
        return self.generator.count_params() + self.discriminator.count_params()

    def call(self, noise):
        return self._output(self.average_generator(noise))

    def trained_weights(self):
        return self.generator.trainable_variables

    @property
    def metrics(self):
        return [*self.trackers.values(), self.validation_distance]

    def _noise(self, batch, steps):
        return tf.random.stateless_normal((batch, steps, self.noise_dim),
                                          replicas.step_seed(self.optimizer, 41))

    def generate_audio(self, noise, beats=None, training=False):
        """Noise (batch, steps, noise_dim) [+ beats (batch, 2)] → (batch, samples), from the
        generator being trained (training=True) or its average (what generation uses)."""
        generator = self.generator if training else self.average_generator
        return self.voice(generator, noise, beats, training)

    def voice(self, generator, noise, beats=None, training=False):
        """What `generator` makes of the noise, with the beat clock and the drift filter."""
        if self.beat_clock:
            steps = ops.shape(noise)[1]
            clock = beat_clock(beats, steps, self.frame_length, self.frame_length / 2, self.rate)
            noise = ops.concatenate([noise, clock], axis=-1)
        return self._output(generator(noise, training=training))

    def _output(self, frames):
        """Frames → audio; with `drift_filter`, minus its sub-audio drift."""
        audio = ops.reshape(frames, (ops.shape(frames)[0], -1))
        return remove_drift(audio, self.drift_filter) if self.drift_filter else audio

    def critic(self, audio, beats=None, training=False):
        """(batch, views) scores: one per judge of the discriminator."""
        views = []
        for spectrum in self.view_spectra:
            spectra = spectrum(audio)
            if self.beat_clock:
                length = spectrum.frame_length
                clock = beat_clock(beats, ops.shape(spectra)[1], length // 2, length / 2,
                                   self.rate)
                spectra = ops.concatenate([spectra, clock], axis=-1)
            views.append(spectra)
        return self.discriminator(views[0] if len(views) == 1 else views, training=training)

    def _band_statistics(self, audio):
        """Band statistics (modules/spectral.py) at the two resolutions: six (batch, bands)."""
        return band_statistics(audio, (self.spectrum, self.fine_spectrum))

    def _spectral_distance(self, real, fake):
        """The feature-matching distance: how far the batch's average band statistics are."""
        return band_statistics_distance([ops.mean(s, axis=0) for s in self._band_statistics(real)],
                                        [ops.mean(s, axis=0) for s in self._band_statistics(fake)],
                                        self.feature_weights)

    def _moments_distance(self, real, fake):
        """The moment-matching distance: the batch's log-mel frames, real against fake."""
        return frame_moments_distance(log_mel_frames(self.fine_spectrum(real), self.mel_bank),
                                      log_mel_frames(self.fine_spectrum(fake), self.mel_bank))

    def train_step(self, data):
        real, beats = data if self.beat_clock else (data, None)
        batch = tf.shape(real)[0]
        steps = tf.shape(real)[1] // self.frame_length
        # One generator pass serves both updates (as in most GAN code: the discriminator
        # sees it without gradient), and the discriminator hears real, fake and real against
        # a wrong clock in one batch: one LSTM pass instead of three (bench_train_gan.py).
        with tf.GradientTape() as g_tape:
            fake = self.generate_audio(self._noise(batch, steps), beats, training=True)
            with g_tape.stop_recording():
                audio, clocks = [real, ops.stop_gradient(fake)], [beats, beats]
                if self.beat_clock:
                    # real audio heard against a clock a quarter to three quarters of a beat
                    # off counts as fake (the matching-aware discriminator of Reed et al.
                    # 2016): the discriminator has to check where the beats fall
                    shift = tf.random.stateless_uniform(
                        (batch, 1), replicas.step_seed(self.optimizer, 43), 0.25, 0.75)
                    audio.append(real)
                    clocks.append(ops.concatenate([beats[:, :1], beats[:, 1:] + shift], axis=1))
                with tf.GradientTape() as d_tape:
                    scores = self.critic(ops.concatenate(audio, axis=0),
                                         ops.concatenate(clocks, axis=0) if self.beat_clock
                                         else None, training=True)
                    d_real, d_fake = scores[:batch], scores[batch:2 * batch]
                    d_loss = ops.mean(ops.relu(1.0 - d_real)) + ops.mean(ops.relu(1.0 + d_fake))
                    if self.beat_clock:
                        d_loss = d_loss + ops.mean(ops.relu(1.0 + scores[2 * batch:]))
                    d_share = replicas.share(d_loss)
                grads = d_tape.gradient(d_share, self.discriminator.trainable_variables)
                self.critic_optimizer.apply_gradients(
                    zip(grads, self.discriminator.trainable_variables))
                if self.beat_clock:
                    widen_tempo_range(self.tempo_range, beats)
            d_fake_g = self.critic(fake, beats, training=True)
            spectral = self._spectral_distance(real, fake)
            g_loss = -ops.mean(d_fake_g) + self.feature_matching * spectral
            if self.moment_matching:
                moments = self._moments_distance(real, fake)
                g_loss = g_loss + self.moment_matching * moments
            g_share = replicas.share(g_loss)
        grads = g_tape.gradient(g_share, self.generator.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        replicas.once(self._follow_generator)

        logged = (d_loss, g_loss, spectral, ops.mean(d_real), ops.mean(d_fake))
        return self._track(*logged, *((moments,) if self.moment_matching else ()))

    def _follow_generator(self):
        """One step of the averaged generator towards the trained one."""
        decay = self.generator_average
        for average, weight in zip(self.average_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    def test_step(self, data):
        real, beats = data if self.beat_clock else (data, None)
        steps = tf.shape(real)[1] // self.frame_length
        # the same noise at every validation, so epochs are compared on equal terms
        noise = tf.random.stateless_normal((tf.shape(real)[0], steps, self.noise_dim), [0, 0])
        fake = self.generate_audio(noise, beats)
        self.validation_distance.update_state(self._band_statistics(real),
                                              self._band_statistics(fake))
        # "loss" is what val_loss, best.keras and early stopping read
        return {"loss": self.validation_distance.result()}



class AveragedVoice(keras.layers.Layer):
    """The averaged generator with its clock and filter as a layer of its own (for export):
    noise [and beats] → audio. Holds the generator's weights only."""

    def __init__(self, gan: LSTMGAN, **kwargs):
        super().__init__(**kwargs)
        self.generator = gan.average_generator
        self._voice = gan.voice   # a method: not tracked, so the rest of the GAN stays out

    def call(self, noise, beats=None):
        return self._voice(self.generator, noise, beats)


@register
class LSTMGANFamily(Generates):
    name = "lstm-gan"
    Config = LSTMGANConfig
    # the noise's scale (BigGAN's truncation trick, as a scale): on the built-in corpus,
    # Fréchet distance by temperature 1.0 → 153, 0.75 → 142, 0.5 → 134, 0.25 → 123, ~0 → 117,
    # but below 0.5 the pulse turns mechanical (tempo strength 0.59-0.70 against the
    # corpus's 0.42; 0.42 at 0.5) and the songs of one tempo alike
    default_temperature = 0.5
    monitor = "val_frechet"

    def callbacks(self, data):
        return [FrechetValidation(self, data)]

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
        states = keras.layers.LSTM(c.hidden, return_sequences=True, name="g_lstm")(noise)
        h = states
        if c.upsampler == "dense":
            h = keras.layers.Dense(c.hidden, activation="relu", name="g_dense")(h)
            frames = keras.layers.Dense(c.frame, activation="tanh", name="g_frames")(h)
        else:
            # frame // 64 steps of 64 channels per frame, then three 4x transposed convolutions
            h = keras.layers.Dense(c.frame, name="g_dense")(h)
            h = keras.layers.Reshape((-1, 64), name="g_unfold")(h)
            for i, channels in enumerate(c.upsampler_channels):
                h = keras.layers.LeakyReLU(0.2)(h)
                h = keras.layers.Conv1DTranspose(channels, 8, strides=4, padding="same",
                                                 name=f"g_up{i}")(h)
            h = keras.layers.LeakyReLU(0.2)(h)
            frames = keras.layers.Conv1D(1, 7, padding="same", activation="tanh", name="g_out")(h)
        if c.harmonics:
            controls = keras.layers.Dense(c.harmonic_voices * controls_per_voice(c.harmonics),
                                          name="g_controls")(states)
            tonal = HarmonicOscillators(c.frame, self.rate, c.harmonics, c.harmonic_voices,
                                        name="g_harmonic")(controls)
            tonal = keras.layers.Reshape((-1, c.frame) if c.upsampler == "dense" else (-1, 1),
                                         name="g_tonal")(tonal)
            frames = keras.layers.Add(name="g_mix")([frames, tonal])
        generator = keras.Model(noise, frames, name="generator")

        discriminator = self._discriminator(clock)

        model = LSTMGAN(generator, discriminator, c.frame, c.noise_dim, c.feature_matching,
                        c.beat_clock, self.rate, c.generator_average,
                        drift_filter=c.drift_filter, critic_views=c.critic_views,
                        feature_weighting=c.feature_weighting,
                        moment_matching=c.moment_matching, name="lstm_gan")
        model.build((None, None, c.noise_dim + clock))
        self.compile(model)
        return model

    def _discriminator(self, clock):
        """log spectra (+ clock) of each view → (batch, views) scores: per view, an LSTM over
        the spectra's embeddings, its per-frame scores averaged over time."""
        c = self.config
        sn = keras.layers.SpectralNormalization
        inputs, scores = [], []
        for k in c.critic_views:
            # view 1 keeps the names of the single-view discriminator of runs made before
            tag = "" if k == 1 else f"_v{k}"
            spectra = keras.Input((None, k * c.frame // 2 + 1 + clock), name=f"log_spectra{tag}")
            # Dense acts on the last axis of every frame; TimeDistributed would do the same
            # but, with a known number of frames, unrolls into one copy per frame (a 60 s trace)
            h = sn(keras.layers.Dense(c.critic_hidden), name=f"d_embed{tag}")(spectra)
            h = keras.layers.LeakyReLU(0.2)(h)
            if c.critic_stride > 1:
                # the LSTM steps over groups of frames: its steps are most of the step's time
                h = sn(keras.layers.Conv1D(c.critic_hidden, 2 * c.critic_stride,
                                           strides=c.critic_stride, padding="same"),
                       name=f"d_stride{tag}")(h)
                h = keras.layers.LeakyReLU(0.2)(h)
            h = keras.layers.LSTM(c.critic_hidden, return_sequences=True, name=f"d_lstm{tag}")(h)
            score = sn(keras.layers.Dense(1), name=f"d_score{tag}")(h)
            inputs.append(spectra)
            scores.append(keras.layers.GlobalAveragePooling1D(name=f"d_mean{tag}")(score))
        score = scores[0] if len(scores) == 1 else keras.layers.Concatenate(name="d_views")(scores)
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, score, name="discriminator")

    def compile(self, model):
        c = self.config
        model.compile(optimizer=keras.optimizers.Adam(c.learning_rate, 0.5, 0.9),
                      critic_optimizer=keras.optimizers.Adam(c.critic_learning_rate, 0.5, 0.9))

    def exports(self, model):
        noise = keras.Input((None, self.config.noise_dim), name="noise")
        inputs = [noise]
        if self.config.beat_clock:
            inputs.append(keras.Input((2,), name="beats"))
        audio = AveragedVoice(model, name="voice")(*inputs)
        return {"generator": keras.Model(inputs, keras.layers.Identity(name="audio")(audio),
                                         name="generator")}

    def cannot_export(self, fmt):
        if fmt == "litert":
            return ("the generator's LSTM runs over the whole noise sequence, which the LiteRT "
                    "interpreter runs only with TensorFlow's select ops (Flex): export "
                    "saved_model or onnx")
        return None

    def export_notes(self, model):
        c = self.config
        notes = {"rate": self.rate, "samples_per_noise_step": c.frame,
                 "generator": f"noise (batch, steps, {c.noise_dim}) standard normal times "
                              f"the temperature ({self.default_temperature} by default) -> "
                              f"audio (batch, steps * {c.frame})"}
        if c.beat_clock:
            low, high = (float(v) for v in np.asarray(model.tempo_range))
            notes["beats"] = ("(batch, 2): tempo in BPM and the beat position at the first "
                              f"sample (0: on a downbeat); trained on {low:.1f}-{high:.1f} BPM")
        return notes

    def controls(self):
        if not self.config.beat_clock:
            return ()
        return (Control("bpm", "tempo of every song; default: drawn per song from the "
                               "training corpus's tempos", MIN_BPM, MAX_BPM, "BPM"),)

    def describe(self, model, request):
        if not self.config.beat_clock:
            return {}
        tempos = self.tempos(model, request.n, request.seed, request.controls.get("bpm"))
        return {"bpm": [round(float(b), 2) for b in tempos]}

    def tempos(self, model, n, seed, bpm=None):
        """Tempo of each of n clips: `bpm`, or drawn from the training windows' range."""
        return draw_tempos(model.tempo_range, n, seed, bpm)

    def generate(self, model, request, progress=None):
        n, samples, seed = request.n, request.samples(self.rate), request.seed
        bpm = request.controls.get("bpm")
        steps = int(np.ceil(samples / self.config.frame))
        scale = request.temperature if request.temperature > 0 else 1.0
        noise = scale * tf.random.stateless_normal((n, steps, self.config.noise_dim), [seed, 0])
        beats = None
        if self.config.beat_clock:
            beats = np.stack([self.tempos(model, n, seed, bpm), np.zeros(n, np.float32)], axis=1)
        audio = np.asarray(model.generate_audio(noise, beats)).reshape(n, -1)
        if progress:
            progress(samples)
        return audio[:, :samples].astype(np.float32)
