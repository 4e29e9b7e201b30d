"""Each family: a tiny config trains a few steps, saves and loads identically, generates."""

import numpy as np
import pytest
import yaml

from conftest import tiny_config
from musicrgan import import_tensorflow
from musicrgan.models import family_names, get_family
from musicrgan.models.base import ConfigError
from musicrgan.runs import load_model, make_family, load_run_config, read_history, train

tf = import_tensorflow()
import keras  # noqa: E402

FAMILIES = ["sample-lstm", "fft-lstm", "lstm-gan"]


def tiny(name):
    return yaml.safe_load(tiny_config(name).read_text())


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


@pytest.mark.parametrize("name", FAMILIES)
def test_tiny_run_trains_saves_loads_identically_and_generates(name, techno, tmp_path):
    run = tmp_path / "run"
    state = train(run, 2, family_name=name, data=str(techno), config_overrides=tiny(name),
                  new=True, verbose=0)
    assert state["epochs_done"] == 2
    history = read_history(run)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert all(np.isfinite(float(r["val_loss"])) for r in history)
    for f in ("config.yaml", "model.keras", "best.keras", "state.json", "history.csv"):
        assert (run / f).is_file(), f
    assert (run / "tensorboard").is_dir()

    family = make_family(load_run_config(run))
    model = load_model(run / "model.keras", family)
    again = keras.saving.load_model(run / "model.keras", safe_mode=True)
    if name == "lstm-gan":
        # noise + beat clock
        probe = np.random.default_rng(0).standard_normal((2, 5, model.generator.input_shape[-1]))
        a, b = model.generator(probe.astype("float32")), again.generator(probe.astype("float32"))
        # what generation uses: the generator's moving average, saved beside it
        average = again.average_generator(probe.astype("float32"))
        np.testing.assert_array_equal(np.asarray(model.average_generator(probe.astype("float32"))),
                                      np.asarray(average))
        assert not np.allclose(np.asarray(average), np.asarray(b))
        # the tempos it trained on travel with it (the fixture: 120-150 BPM, one found at 2/3)
        low, high = np.asarray(again.tempo_range)
        assert 95 < low <= high < 152
    else:
        windows = np.random.default_rng(0).uniform(-0.5, 0.5, (2, family.window())).astype("float32")
        x, _ = family.examples(tf.constant(windows))
        a, b = model(x), again(x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the checkpoint carries optimizer state: one step per batch, no more (tiny: 3 per epoch)
    steps = 2 * family.config.steps_per_epoch
    assert int(model.optimizer.iterations) == steps
    if name == "lstm-gan":
        assert int(model.critic_optimizer.iterations) == steps

    samples = 3000
    out = family.generate(model, 3, samples, None, 1.0, seed=7)
    assert out.shape == (3, samples) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    same = family.generate(model, 3, samples, None, 1.0, seed=7)
    other = family.generate(model, 3, samples, None, 1.0, seed=8)
    np.testing.assert_array_equal(out, same)
    assert not np.array_equal(out, other)
    # the songs of one batch differ from each other
    assert not np.array_equal(out[0], out[1])


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
    run = tmp_path / "run"
    state = train(run, 4, family_name="lstm-gan", data=str(corpus), config_overrides=config,
                  new=True, verbose=0)
    spectral = [row["spectral"] for row in state["history"]]
    assert spectral[-1] < spectral[0]  # feature matching improves over training
    family = make_family(load_run_config(run))
    clips = family.generate(load_model(run / "model.keras", family), 4, 8000, None, 1.0, seed=1)
    for clip in clips:
        flatness, loudness = metrics.spectral_flatness(clip), metrics.loudness(clip, 8000)
        assert flat_lo * 0.5 <= flatness <= flat_hi * 1.5, (flatness, flat_lo, flat_hi)
        assert flatness < noise_flatness / 10
        assert loud_lo - 3 <= loudness <= loud_hi + 3, (loudness, loud_lo, loud_hi)


def test_fft_lstm_next_block_variant_predicts_one_block_and_generates(techno, tmp_path):
    """The original's second variant: the sequence predicts only the block after it."""
    config = {**tiny("fft-lstm"), "mode": "next", "overlap": False}
    run = tmp_path / "run"
    train(run, 1, family_name="fft-lstm", data=str(techno), config_overrides=config, new=True,
          verbose=0)
    family = make_family(load_run_config(run))
    model = load_model(run / "model.keras", family)
    windows = np.zeros((2, family.window()), "float32")
    x, y = family.examples(tf.constant(windows))
    assert x.shape == (2, 4, 66) and y.shape == (2, 66)
    assert model(x).shape == (2, 66)
    out = family.generate(model, 2, 1000, None, 0.5, seed=1)
    assert out.shape == (2, 1000) and np.isfinite(out).all()


@pytest.mark.slow
def test_lstm_gan_keeps_the_pulse_at_the_tempo_asked_for(tmp_path):
    """The default lstm-gan, trained 12 epochs (about what `make demo`'s 5 minutes give on a
    fast 2-core machine; an epoch count, so the check does not depend on the machine) on
    the built-in corpus: 8-second clips asked for at 124 and at 146 BPM (inside the corpus's
    120-150) have their onsets on the 16th-note grid of that tempo (not of one 7 % off), a
    pulse about as strong as the corpus's own (tempo strength 0.42 on average), and the
    Fréchet distance to the test split fell over training. (The tempo estimate itself is not
    asserted: it can land on 4/5 or 2/3 of a syncopated pattern's beat.)"""
    from musicrgan import metrics
    from musicrgan.corpus.synth import synth_corpus
    EPOCHS = 12
    corpus = tmp_path / "corpus"
    synth_corpus(corpus, loops=24, seconds=8, rate=16000, seed=0)
    run = tmp_path / "run"
    state = train(run, EPOCHS, family_name="lstm-gan", data=str(corpus),
                  config_overrides={"seed": 0}, new=True, verbose=0)
    frechet = [row["val_frechet"] for row in state["history"]]
    assert frechet[-1] < 0.6 * frechet[0], frechet
    family = make_family(load_run_config(run))
    model = load_model(run / "best.keras", family)
    for bpm in (124, 146):
        clips = family.generate(model, 6, 8 * 16000, None, family.default_temperature, seed=3,
                                bpm=bpm)
        on = [metrics.grid_alignment(clip, bpm) for clip in clips]
        off = [metrics.grid_alignment(clip, bpm * 1.07) for clip in clips]
        strength = [metrics.tempo(clip)[1] for clip in clips]
        # measured on a 3-minute run: 0.70-0.80 on the grid, 0.01-0.26 off it
        assert np.mean(on) > 0.5 and np.mean(on) > 2.5 * np.mean(off), (bpm, on, off)
        assert np.mean(strength) > 0.25, (bpm, strength)
