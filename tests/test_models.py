"""Each family: a tiny config trains a few steps, saves and loads identically, generates."""

import numpy as np
import pytest
import yaml

from conftest import assert_keeps_the_pulse, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models import family_names, get_family
from musicrgan.models.base import ConfigError, GenerationRequest
from musicrgan.modules.features import remove_drift
from musicrgan.runs import Run

tf = import_tensorflow()
import keras  # noqa: E402

FAMILIES = ["sample-lstm", "fft-lstm", "lstm-gan"]


def tiny(name):
    return yaml.safe_load(tiny_config(name).read_text())


def trained(folder, name, data, epochs, config):
    run = Run.create(folder, name, data, config)
    return run, run.train(epochs, verbose=0)


def generate(family, model, n, samples, temperature, seed, **controls):
    request = GenerationRequest(n=n, seconds=samples / family.rate, seed=seed,
                                temperature=temperature, controls=controls)
    return family.generate(model, family.checked(request))


def test_registry_knows_every_family():
    assert set(FAMILIES) <= set(family_names())
    with pytest.raises(KeyError, match="unknown model family 'nope'.*fft-lstm"):
        get_family("nope")


@pytest.mark.parametrize("name", FAMILIES)
def test_config_round_trips_and_rejects_unknown_keys(name):
    cls = get_family(name)
    config = cls.Config.from_dict(tiny(name))
    assert cls.Config.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown config key"):
        cls.Config.from_dict({"not_a_key": 1})


@pytest.mark.slow  # 50 s on 2 cores: a quality check, with the slow ones
def test_lstm_gan_learns_the_corpus_sound_neither_silence_nor_noise(tmp_path):
    """A short GAN run on the built-in corpus: its output's spectral flatness and loudness
    (the descriptors `musicrgan evaluate` reports) land in the corpus's range, far from both
    silence and white noise."""
    from musicrgan import metrics
    from musicrgan.corpus.synth import synth_corpus
    from musicrgan.data import WindowSource, read_window
    corpus = tmp_path / "corpus"
    synth_corpus(corpus, loops=8, seconds=4, rate=8000, seed=2)
    segments = []
    for f in WindowSource(corpus, "train", 8000).files:
        x = read_window(f.path, 0, f.frames)
        segments += [x[i:i + 8000] for i in range(0, len(x) - 8000, 8000)]
    loud_lo, loud_hi = np.percentile([metrics.loudness(s, 8000) for s in segments], [5, 95])
    flat_lo, flat_hi = np.percentile([metrics.spectral_flatness(s) for s in segments], [5, 95])
    noise_flatness = metrics.spectral_flatness(np.random.default_rng(0).uniform(-0.5, 0.5, 16000))

    # 1 s windows of 16 ms frames, as the default config at 16 kHz: a window holds two beats
    config = dict(frame=128, seq_len=64, noise_dim=16, hidden=32, critic_hidden=32, batch_size=8,
                  steps_per_epoch=100, validation_steps=2, learning_rate=5e-3,
                  critic_learning_rate=5e-3, seed=0)
    run, state = trained(tmp_path / "run", "lstm-gan", corpus, 4, config)
    spectral = [row["spectral"] for row in state["history"]]
    assert spectral[-1] < spectral[0]  # feature matching improves over training
    clips = generate(run.family, run.model("last"), 4, 8000, 1.0, seed=1)
    for clip in clips:
        flatness, loudness = metrics.spectral_flatness(clip), metrics.loudness(clip, 8000)
        assert flat_lo * 0.5 <= flatness <= flat_hi * 1.5, (flatness, flat_lo, flat_hi)
        assert flatness < noise_flatness / 10
        assert loud_lo - 3 <= loudness <= loud_hi + 3, (loudness, loud_lo, loud_hi)


def test_fft_lstm_next_block_variant_predicts_one_block_and_generates(techno, tmp_path):
    """The original's second variant: the sequence predicts only the block after it."""
    config = {**tiny("fft-lstm"), "mode": "next", "overlap": False}
    run, _ = trained(tmp_path / "run", "fft-lstm", techno, 1, config)
    family, model = run.family, run.model("last")
    windows = np.zeros((2, family.window()), "float32")
    x, y = family.examples(tf.constant(windows))
    assert x.shape == (2, 4, 66) and y.shape == (2, 66)
    assert model(x).shape == (2, 66)
    out = generate(family, model, 2, 1000, 0.5, seed=1)
    assert out.shape == (2, 1000) and np.isfinite(out).all()


def test_lstm_gan_judges_each_view_and_its_runs_save_load_and_generate(techno, tmp_path):
    """critic_views [1, 4]: the discriminator scores every window once per view (the frame
    length's spectra and 4x finer ones), trains, and the run saves, loads and generates;
    a view longer than the training window is refused with the key's name."""
    config = {**tiny("lstm-gan"), "critic_views": [1, 4]}
    run, state = trained(tmp_path / "run", "lstm-gan", techno, 1, config)
    assert np.isfinite(state["history"][-1]["d_loss"])
    model = run.model("last")
    window = run.family.window()
    audio = tf.random.normal((3, window)) * 0.1
    beats = tf.constant([[128.0, 0.0]] * 3)
    scores = model.critic(audio, beats)
    assert scores.shape == (3, 2)
    # the two judges are different networks: they do not give the same scores
    assert not np.allclose(scores[:, 0], scores[:, 1])
    clips = generate(run.family, model, 2, window, 0.5, seed=1)
    assert clips.shape == (2, window) and np.isfinite(clips).all()
    with pytest.raises(ConfigError, match="critic_views"):
        get_family("lstm-gan").Config.from_dict({**tiny("lstm-gan"), "critic_views": [1, 64]})


def band_boosted(real, low, high, rate, rng):
    """`real` plus band-passed noise between `low` and `high` Hz."""
    from scipy import signal
    sos = signal.butter(4, [low, high], "bandpass", fs=rate, output="sos")
    return (real + signal.sosfilt(sos, rng.normal(0, 0.3, real.shape), axis=-1)).astype("float32")


def test_lstm_gan_mel_feature_weighting_hears_the_bass_more_than_the_top_octave():
    """feature_weighting mel: against a difference in the top octave, the same difference
    in the bass counts several times more in the feature-matching distance than under
    linear weighting (where the top octave is half the bins)."""
    family = get_family("lstm-gan")
    rate, rng = 8000, np.random.default_rng(0)
    real = rng.normal(0, 0.1, (4, 8192)).astype("float32")
    bass, top = band_boosted(real, 60, 250, rate, rng), band_boosted(real, 2000, 3900, rate, rng)
    ratio = {}
    for weighting in ("linear", "mel"):
        config = family.Config.from_dict({**tiny("lstm-gan"), "feature_weighting": weighting})
        model = family(config, rate).build()
        to_bass, to_top = (float(model._spectral_distance(real, fake)) for fake in (bass, top))
        assert to_bass > 0 and to_top > 0
        ratio[weighting] = to_top / to_bass
    assert ratio["linear"] > 3 * ratio["mel"], ratio
    with pytest.raises(ConfigError, match="feature_weighting"):
        family.Config.from_dict({**tiny("lstm-gan"), "feature_weighting": "bark"})


def test_lstm_gan_upsampler_channels_shape_the_generator():
    """upsampler_channels sets the widths of the three 4x transposed convolutions; a list
    of another length is refused with the key's name."""
    family = get_family("lstm-gan")
    widths = {}
    for channels in ([32, 16, 8], [8, 8, 4]):
        config = family.Config.from_dict({**tiny("lstm-gan"), "upsampler_channels": channels})
        generator = family(config, 8000).build().generator
        widths[tuple(channels)] = [generator.get_layer(f"g_up{i}").filters for i in range(3)]
    assert widths == {(32, 16, 8): [32, 16, 8], (8, 8, 4): [8, 8, 4]}
    with pytest.raises(ConfigError, match="upsampler_channels"):
        family.Config.from_dict({**tiny("lstm-gan"), "upsampler_channels": [8, 8]})


def test_frame_moments_distance_hears_bands_move_together_where_band_statistics_do_not():
    """Two sets of frames with the same bands' values, in one moving together and in the
    other shuffled apart: each band's mean and spread are identical (what per-band
    statistics compare), the moment distance tells them apart through the covariance; the
    same frames are at distance 0."""
    from musicrgan.modules.spectral import frame_moments_distance
    rng = np.random.default_rng(0)
    level = rng.normal(0, 2, (2000, 1))
    together = np.concatenate([level, level + rng.normal(0, 0.1, (2000, 1))], axis=1)
    apart = np.stack([rng.permutation(together[:, 0]), rng.permutation(together[:, 1])], axis=1)
    together, apart = together.astype("float32"), apart.astype("float32")
    np.testing.assert_allclose(together.mean(0), apart.mean(0), atol=1e-5)
    np.testing.assert_allclose(together.std(0), apart.std(0), atol=1e-5)
    assert float(frame_moments_distance(together, together)) < 1e-6
    assert float(frame_moments_distance(together, apart)) > 1.0  # off-diagonals ~4 against ~0: ~2


def test_lstm_gan_moment_matching_trains_and_logs_its_distance(techno, tmp_path):
    """moment_matching: the log-mel frames' mean and covariance join the generator's loss;
    the run logs the distance per epoch, saves, loads and generates; off by default, where
    no such column is written."""
    run, state = trained(tmp_path / "run", "lstm-gan", techno, 1,
                         {**tiny("lstm-gan"), "moment_matching": 1.0})
    assert np.isfinite(state["history"][-1]["moments"]) and state["history"][-1]["moments"] > 0
    clips = generate(run.family, run.model("last"), 2, run.family.window(), 0.5, seed=1)
    assert clips.shape == (2, run.family.window()) and np.isfinite(clips).all()
    assert "moments" not in get_family("lstm-gan")(
        get_family("lstm-gan").Config.from_dict(tiny("lstm-gan")), 8000).build().trackers
    with pytest.raises(ConfigError, match="moment_matching"):
        get_family("lstm-gan").Config.from_dict({**tiny("lstm-gan"), "moment_matching": -1})


def harmonic_controls(rate, harmonics, f0, levels, frames=40):
    """Controls for one HarmonicOscillators voice: fundamental f0, full loudness, the
    harmonics' softmax logits `levels` (30: on, -30: off)."""
    share = np.log(f0 / 20.0) / np.log(1000.0 / 20.0)
    controls = np.zeros((1, frames, 2 + harmonics), np.float32)
    controls[..., 0] = np.log(share / (1 - share))
    controls[..., 1] = 30.0
    controls[..., 2:] = levels
    return controls


def test_harmonic_oscillators_play_the_harmonics_asked_for_continuously_and_below_nyquist():
    """A voice at 110 Hz with only its second harmonic on sounds at 220 Hz, without a jump
    where frames meet (the steepest step is a 220 Hz sine's); with harmonics 1 and 10 on at
    500 Hz and 8 kHz, the 10th (5 kHz, above Nyquist) is silenced, not aliased to 3 kHz."""
    from musicrgan.modules.harmonic import HarmonicOscillators
    rate, harmonics = 8000, 10
    layer = HarmonicOscillators(64, rate, harmonics)
    levels = np.full(harmonics, -30.0)
    levels[1] = 30.0
    audio = np.asarray(layer(harmonic_controls(rate, harmonics, 110.0, levels)))[0]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    assert abs(np.fft.rfftfreq(audio.size, 1 / rate)[spectrum.argmax()] - 220.0) < 5
    assert np.abs(np.diff(audio)).max() <= 1.01 * 2 * np.pi * 220.0 / rate * np.abs(audio).max()
    levels = np.full(harmonics, -30.0)
    levels[[0, 9]] = 30.0
    audio = np.asarray(layer(harmonic_controls(rate, harmonics, 500.0, levels)))[0]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    hz = np.fft.rfftfreq(audio.size, 1 / rate)
    assert abs(hz[spectrum.argmax()] - 500.0) < 5
    assert spectrum[np.abs(hz - 3000.0) < 50].max() < 1e-3 * spectrum.max()


def test_lstm_gan_with_harmonics_starts_silent_there_and_its_runs_save_load_and_generate(
        techno, tmp_path):
    """harmonics: oscillators beside the upsampler, two voices here; freshly built, their
    part of the sound is near silence (DDSP's bias: the voices are brought in by training,
    not heard droning from the start); a run trains, saves, loads and generates."""
    family = get_family("lstm-gan")
    config = {**tiny("lstm-gan"), "harmonics": 6, "harmonic_voices": 2}
    generator = family(family.Config.from_dict(config), 8000).build().generator
    controls = generator.get_layer("g_controls")
    assert controls.units == 2 * (2 + 6)
    probe = keras.Model(generator.input, generator.get_layer("g_harmonic").output)
    tonal = np.asarray(probe(tf.random.normal((2, 16, generator.input.shape[-1]))))
    assert tonal.shape == (2, 16 * config["frame"]) and np.sqrt(np.mean(tonal ** 2)) < 1e-3
    run, state = trained(tmp_path / "run", "lstm-gan", techno, 1, config)
    model = run.model("last")
    assert np.isfinite(state["history"][-1]["g_loss"])
    clips = generate(run.family, model, 2, run.family.window(), 0.5, seed=1)
    assert clips.shape == (2, run.family.window()) and np.isfinite(clips).all()
    with pytest.raises(ConfigError, match="harmonic"):
        family.Config.from_dict({**tiny("lstm-gan"), "harmonic_voices": 0})


@pytest.mark.slow
def test_lstm_gan_keeps_the_pulse_at_the_tempo_asked_for(tmp_path):
    """The default lstm-gan, trained 12 epochs (about what `make demo`'s 5 minutes give on a
    fast 2-core machine; an epoch count, so the check does not depend on the machine) on
    the built-in corpus: 8-second clips asked for at 124 and at 146 BPM (inside the corpus's
    120-150) have their onsets on the 16th-note grid of that tempo (not of one 7 % off), a
    pulse about as strong as the corpus's own (tempo strength 0.42 on average), and the
    Fréchet distance to the test split fell over training. (The tempo estimate itself is not
    asserted: it can land on 4/5 or 2/3 of a syncopated pattern's beat.)"""
    from musicrgan.corpus.synth import synth_corpus
    EPOCHS = 12
    corpus = tmp_path / "corpus"
    synth_corpus(corpus, loops=24, seconds=8, rate=16000, seed=0)
    run, state = trained(tmp_path / "run", "lstm-gan", corpus, EPOCHS, {"seed": 0})
    frechet = [row["val_frechet"] for row in state["history"]]
    assert frechet[-1] < 0.6 * frechet[0], frechet
    family, model = run.family, run.model("best")
    for bpm in (124, 146):
        clips = generate(family, model, 6, 8 * 16000, None, seed=3, bpm=bpm)
        # measured on a 3-minute run: 0.70-0.80 on the grid, 0.01-0.26 off it; tempo
        # strength 0.20 (2026-12-07, a run of this test) to 0.57, 0.02-0.11 with no clock.
        # The same seeded run differs by machine: on an Intel Xeon with AMX (2026-12-07) it
        # gave 0.44-0.52 on the grid at 124 BPM and 0.33-0.41 at 146, 0.005-0.21 off it, the
        # same on every rerun; the contrast with the grid 7 % off is what tells a pulse
        assert_keeps_the_pulse(clips, bpm, min_strength=0.15, min_on=0.3)


def test_the_drift_filter_removes_dc_and_drift_and_keeps_a_kicks_fundamental():
    t = np.arange(32000) / 16000
    kick = 0.5 * np.sin(2 * np.pi * 50 * t)
    drift = 0.2 * np.sin(2 * np.pi * 2 * t)
    filtered = np.asarray(remove_drift((0.3 + drift + kick)[None].astype("float32"), 512))[0]
    inner = slice(2000, -2000)
    assert abs(filtered[inner].mean()) < 1e-3
    # what is left is the kick, 0.4 dB down, and almost none of the DC and 2 Hz drift
    left = filtered[inner] - kick[inner] * 10 ** (-0.4 / 20)
    assert np.sqrt(np.mean(left ** 2)) < 0.02 * np.sqrt(np.mean(kick[inner] ** 2))


@pytest.mark.parametrize("name", ["vqvae", "wave-vae"])
def test_an_autoencoders_audio_has_no_dc_however_its_last_layer_is_biased(name):
    family = get_family(name)
    means = {}
    # how much of the bias survives the tanh depends on the initial weights: fixed here
    keras.utils.set_random_seed(0)
    for drift_filter in (0, 512):
        # the default decoders end in an inverse STFT: the convolutional one has the biased
        # last layer in question (the filter itself is the same layer in both)
        config = family.Config.from_dict({"channels": 4, "drift_filter": drift_filter,
                                          "decoder": "conv"})
        decoder = family(config, 16000).build().decoder
        last = decoder.get_layer("dec_out")
        weights, bias = last.get_weights()
        last.set_weights([weights, bias + 0.5])  # as 5 minutes of spectral losses left one
        latents = np.random.default_rng(0).normal(size=(1, 64, decoder.input_shape[-1]))
        means[drift_filter] = float(np.asarray(decoder(latents.astype("float32"))).mean())
    assert means[0] > 0.15 and abs(means[512]) < 0.01, means


def test_a_linear_learning_rate_schedule_falls_to_zero_over_each_session(techno, tmp_path):
    """lr_schedule linear: each step trains at the learning rate times the share of the
    session still to come, of its epochs or of its time budget; both of a GAN's optimizers
    follow it; a new session starts again from the config's rate (a checkpoint holds the
    scaled one); the default keeps the rate."""
    def rates(run):
        model = run.model("last")
        return (float(model.optimizer.learning_rate),
                float(model.critic_optimizer.learning_rate))

    gan = {**tiny("lstm-gan"), "steps_per_epoch": 5}
    constant, _ = trained(tmp_path / "constant", "lstm-gan", techno, 1, gan)
    c = constant.family.config
    assert rates(constant) == pytest.approx((c.learning_rate, c.critic_learning_rate))

    run, _ = trained(tmp_path / "linear", "lstm-gan", techno, 2, {**gan, "lr_schedule": "linear"})
    # the last of ten steps began with nine done
    assert rates(run) == pytest.approx((c.learning_rate / 10, c.critic_learning_rate / 10))
    run.train(1, verbose=0)  # five steps: the last began with four done
    assert rates(run) == pytest.approx((c.learning_rate / 5, c.critic_learning_rate / 5))

    # a budget: an epoch far longer than it, cut short after many steps, ends near zero
    budget = Run.create(tmp_path / "budget", "fft-lstm", techno,
                        {**tiny("fft-lstm"), "steps_per_epoch": 1_000_000,
                         "lr_schedule": "linear"})
    budget.train(1, budget_seconds=3.0, verbose=0)
    assert int(budget.history[0]["steps"]) > 20
    rate = float(budget.model("last").optimizer.learning_rate)
    assert 0 <= rate < 0.5 * budget.family.config.learning_rate
    with pytest.raises(ConfigError, match="lr_schedule"):
        get_family("vqvae").Config.from_dict({"lr_schedule": "cosine"})


class _WeightWatch(keras.callbacks.Callback):
    """Records the model's weights at every epoch's start, after every step, and at every
    epoch's end (with its val_loss)."""

    def on_train_begin(self, logs=None):
        self.steps, self.epoch_ends, self.epoch_begins = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begins.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append((self.model.get_weights(), logs["val_loss"]))


def test_weight_average_is_what_validation_measures_and_checkpoints_keep(techno, tmp_path,
                                                                        monkeypatch):
    """WeightAverage: after each epoch's training the model holds the moving average of the
    weights of every step (with its warm-up), which the validation loss and the callbacks
    after it see; the next epoch trains on from the raw weights; fit ends on the average.
    Through a run: best.keras holds the average, not the last step's weights."""
    from musicrgan.averaging import WeightAverage, average_decay

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    watch = _WeightWatch()
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x[:16], y[:16]), verbose=0,
              callbacks=[WeightAverage(0.9), watch])

    average = [w.astype(np.float64) for w in watch.epoch_begins[0]]
    for step, weights in enumerate(watch.steps, start=1):
        decay = average_decay(0.9, step)
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
        if step % 5 == 0:  # an epoch's end: 40 examples in batches of 8
            held, val_loss = watch.epoch_ends[step // 5 - 1]
            for a, h in zip(average, held):
                np.testing.assert_allclose(h, a, rtol=1e-5, atol=1e-6)
            assert not np.allclose(held[0], weights[0])  # the average, not the last step
            expected = float(np.mean((_dense_stack(held, x[:16]) - y[:16]) ** 2))
            assert val_loss == pytest.approx(expected, rel=1e-4)
    # the second epoch began from the first's last raw weights
    for raw, begun in zip(watch.steps[4], watch.epoch_begins[1]):
        np.testing.assert_array_equal(raw, begun)
    for a, w in zip(average, model.get_weights()):
        np.testing.assert_allclose(w, a, rtol=1e-5, atol=1e-6)

    # through a run: the config puts the callback first; best.keras is the average
    put_in = []
    original = WeightAverage._put_average_in

    def recorded(self):
        original(self)
        put_in.append([w.numpy().copy() for w in self.trained])
    monkeypatch.setattr(WeightAverage, "_put_average_in", recorded)
    config = {**tiny("sample-lstm"), "steps_per_epoch": 4, "weight_average": 0.5}
    run, _ = trained(tmp_path / "averaged", "sample-lstm", techno, 1, config)
    assert len(put_in) >= 1
    best = run.model("best")
    for held, kept in zip(put_in[-1], [w.numpy() for w in best.trainable_variables]):
        np.testing.assert_array_equal(held, kept)
    with pytest.raises(ConfigError, match="weight_average"):
        get_family("vqvae").Config.from_dict({"weight_average": 1.0})


def _dense_stack(weights, x):
    kernel1, bias1, kernel2, bias2 = weights
    return (x @ kernel1 + bias1) @ kernel2 + bias2
