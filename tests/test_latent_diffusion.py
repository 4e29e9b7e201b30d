"""latent-diffusion: the sampler and schedule recover what an exact denoiser knows; songs
draw their styles from the training windows' Gaussian; through the CLI over a tiny wave-vae,
it learns (validation loss on fixed noise falls), its step count is a control of generate,
and it hears the corpus's beat clock (generate --bpm) and its style."""

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models.latent_diffusion import (LatentDiffusion, LatentDiffusionConfig,
                                               LatentMoments, WindowStyles, cosine_schedule,
                                               ddim)
from musicrgan.models.vqvae import VQVAE, VQVAEConfig
from musicrgan.models.wave_vae import WaveVAE, WaveVAEConfig
from musicrgan.beats import MIN_BPM
from musicrgan.models.base import ConfigError, GenerationRequest
from musicrgan.runs import Run, read_history

import_tensorflow()
from keras import ops  # noqa: E402


def exact_denoiser(target):
    """A denoiser that knows x0: v = a eps - s x0, with eps = (x - a x0) / s."""
    def denoise(x, t):
        a, s = (float(v) for v in cosine_schedule(np.float32(t[0])))
        return a * (x - a * target) / s - s * target
    return denoise


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_ddim_with_an_exact_denoiser_lands_on_its_target(steps):
    """DDIM with a denoiser that knows x0 must land on x0 from any noise, in any number of
    steps; the schedule keeps unit variance (a² + s² = 1)."""
    rng = np.random.default_rng(0)
    target = rng.standard_normal((2, 7, 3)).astype(np.float32)
    noise = rng.standard_normal(target.shape).astype(np.float32)
    landed = ddim(exact_denoiser(target), noise, steps)
    np.testing.assert_allclose(landed, target, atol=1e-4)
    a, s = (float(v) for v in cosine_schedule(np.float32(0.3)))
    assert a * a + s * s == pytest.approx(1.0)


def test_the_moments_of_every_window_standardize_and_scale_back():
    """LatentMoments counts every window it observes: its moments are those of all of them
    together, what it standardizes has zero mean and unit deviation per channel, and a
    model scales standardized draws back to the trajectories' own scale."""
    rng = np.random.default_rng(0)
    windows = [rng.normal([1.0, -2.0, 0.0], [0.3, 2.0, 1.0], (4, 25, 3)).astype(np.float32)
               for _ in range(3)]
    moments = LatentMoments(3)
    for w in windows:
        moments.observe(w)
    rows = np.concatenate(windows).reshape(-1, 3)
    mean, std = (np.asarray(v) for v in moments.moments())
    np.testing.assert_allclose(mean, rows.mean(0), atol=1e-4)
    np.testing.assert_allclose(std, rows.std(0), rtol=1e-3)
    standardized = np.asarray(moments.standardized(rows))
    np.testing.assert_allclose(standardized.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardized.std(0), 1.0, rtol=1e-3)

    family = LatentDiffusion(LatentDiffusionConfig(channels=8, blocks=1, clock=False), 16000)
    family.attach(WaveVAE(WaveVAEConfig(latent_dim=3), 16000), None)
    model = family.build()
    for w in windows:
        model.moments.observe(w)
    np.testing.assert_allclose(model.trajectories(standardized), rows, rtol=1e-3, atol=1e-3)


def windows_in_styles(rng, count, mean, covariance, steps=20):
    """`count` windows (count, steps, dim), each around a mean drawn from N(mean,
    covariance), with unit noise along its steps."""
    means = rng.multivariate_normal(mean, covariance, size=count)
    return (means[:, None, :] + rng.standard_normal((count, steps, len(mean)))).astype(
        np.float32)


STYLE_MEAN = np.array([1.0, -2.0, 0.5])
STYLE_COVARIANCE = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.5], [0.0, -0.5, 0.5]])


def test_window_styles_are_the_gaussian_of_the_window_means():
    """WindowStyles counts every window's mean: its Gaussian is theirs, and what it draws
    has that mean and covariance."""
    rng = np.random.default_rng(1)
    windows = [windows_in_styles(rng, 500, STYLE_MEAN, STYLE_COVARIANCE) for _ in range(4)]
    styles = WindowStyles(3)
    for w in windows:
        styles.observe(w)
    window_means = np.concatenate(windows).mean(axis=1)
    mean, covariance = styles.gaussian()
    np.testing.assert_allclose(mean, window_means.mean(0), atol=1e-4)
    np.testing.assert_allclose(covariance, np.cov(window_means.T, bias=True), atol=1e-3)
    drawn = styles.draw(20000, np.random.default_rng(2))
    np.testing.assert_allclose(drawn.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(drawn.T), covariance, atol=0.08)


def style_keeping_denoiser(inputs):
    """The exact denoiser of songs that are their style at every step (x0 = style)."""
    x, t, style = inputs
    a, s = (ops.reshape(v, (-1, 1, 1)) for v in cosine_schedule(t))
    x0 = style[:, None, :]
    return a * (x - a * x0) / s - s * x0


def test_each_song_keeps_a_style_drawn_like_the_training_windows():
    """Generation gives every song a style of its own, drawn from the Gaussian of the
    training windows' means, standardized for the denoiser and scaled back with the
    trajectory: with a denoiser that makes songs their style, the songs are constant along
    their steps and their levels spread as the training windows' means did."""
    family = LatentDiffusion(LatentDiffusionConfig(channels=8, blocks=1, clock=False,
                                                   style=True), 16000)
    family.attach(WaveVAE(WaveVAEConfig(latent_dim=3), 16000), None)
    model = family.build()
    rng = np.random.default_rng(3)
    for _ in range(8):
        window = windows_in_styles(rng, 500, STYLE_MEAN, STYLE_COVARIANCE)
        model.moments.observe(window)
        model.styles.observe(window)
    model.denoiser = style_keeping_denoiser
    songs = family.draw_trajectories(
        model, family.checked(GenerationRequest(n=1000, seconds=0.1, seed=4)))
    assert songs.shape[1] >= 10
    np.testing.assert_allclose(songs, songs[:, :1, :].repeat(songs.shape[1], 1), atol=1e-3)
    levels = songs[:, 0, :]
    mean, covariance = model.styles.gaussian()
    np.testing.assert_allclose(levels.mean(0), mean, atol=0.15)
    np.testing.assert_allclose(np.cov(levels.T), covariance, atol=0.25)
    other = family.draw_trajectories(
        model, family.checked(GenerationRequest(n=3, seconds=0.1, seed=5)))
    assert not np.allclose(other[:, 0], songs[:3, 0])   # the seed draws the styles


def test_a_style_needs_standardized_trajectories():
    with pytest.raises(ConfigError, match="style needs standardize"):
        LatentDiffusionConfig(standardize=False, style=True).validate()
    LatentDiffusionConfig(standardize=False).validate()   # no style by default


def gaussian_denoiser(variance):
    """The exact v-prediction for data drawn from N(0, variance): E[v | x_t]."""
    def denoise(x, t):
        a, s = (float(v) for v in cosine_schedule(np.float32(t[0])))
        return a * s * (1.0 - variance) * x / (a * a * variance + s * s)
    return denoise


def test_ddim_with_the_exact_denoiser_of_gaussian_data_draws_their_variance():
    """From noise to data of variance 0.25 with the exact denoiser: with many steps, the
    data's variance; with few, less of it (why generation takes 50 by default)."""
    noise = np.random.default_rng(0).standard_normal((20000, 1, 1)).astype(np.float32)
    drawn = {steps: float(ddim(gaussian_denoiser(0.25), noise, steps).var())
             for steps in (20, 50, 200)}
    assert drawn[200] == pytest.approx(0.25, rel=0.03)
    assert drawn[20] < drawn[50] < drawn[200]


def gaussian_data_denoiser(inputs):
    """gaussian_denoiser(0.25) in graph ops, as the model's denoiser is called."""
    x, t = inputs
    a, s = (ops.reshape(v, (-1, 1, 1)) for v in cosine_schedule(t))
    return a * s * 0.75 * x / (a * a * 0.25 + s * s)


def test_songs_start_from_noise_at_the_default_temperature():
    """A request without a temperature draws as one at 1.15 (a trained denoiser's 50-step
    draws were 0.87 of the training spread); the sampler is linear in its start noise for a
    linear denoiser, so the songs spread 1.15x those drawn at 1.0."""
    family = LatentDiffusion(LatentDiffusionConfig(channels=8, blocks=1, clock=False,
                                                   standardize=False), 16000)
    family.attach(WaveVAE(WaveVAEConfig(latent_dim=3), 16000), None)
    model = family.build()
    model.denoiser = gaussian_data_denoiser
    default, unit, hot = (family.draw_trajectories(model, family.checked(GenerationRequest(
        n=64, seconds=0.1, seed=2, temperature=t))) for t in (None, 1.0, 1.15))
    np.testing.assert_allclose(default, hot, rtol=1e-5)
    assert default.std() / unit.std() == pytest.approx(1.15, rel=1e-3)


def test_it_refuses_codes():
    family = LatentDiffusion(LatentDiffusionConfig(), 16000)
    assert "codes of a codebook" in family.accepts(VQVAE(VQVAEConfig(), 16000))
    assert family.accepts(WaveVAE(WaveVAEConfig(), 16000)) is None


@pytest.mark.slow  # 38 s on 2 cores (2026-11-30); the contract test trains and samples it fast
def test_it_learns_a_wave_vae_s_trajectories_and_samples_them(techno, tmp_path, capsys):
    status, _, err = cli(capsys, "train", "new", tmp_path / "wave", "--model", "wave-vae",
                         "--data", techno, "--config", tiny_config("wave-vae"), "--epochs", "1",
                         "--set", "seed=1")
    assert status == 0, err
    status, _, err = cli(capsys, "train", "new", tmp_path / "diff", "--model", "latent-diffusion",
                         "--upstream", tmp_path / "wave", "--config",
                         tiny_config("latent-diffusion"), "--epochs", "3", "--set",
                         "steps_per_epoch=10", "--set", "seed=1")
    assert status == 0, err
    history = read_history(tmp_path / "diff")
    assert float(history[-1]["val_loss"]) < float(history[0]["val_loss"])

    songs = {}
    for k in ("1", "6"):
        status, printed, err = cli(capsys, "generate", tmp_path / "diff", "--n", "2",
                                   "--seconds", "1", "--denoise-steps", k, "--out",
                                   tmp_path / f"s{k}", "--quiet")
        assert status == 0, err
        songs[k] = np.stack([sf.read(p)[0] for p in printed.split()])
    assert songs["1"].shape == (2, 8000) and np.isfinite(songs["6"]).all()
    assert not np.array_equal(songs["1"], songs["6"])   # the step count is used
    listing = json.loads((tmp_path / "s6" / "index.json").read_text())["clips"]
    assert {c["family"] for c in listing} == {"latent-diffusion"}

    # the clock: every training window's tempo counted (3 epochs of 10 steps of 4), the
    # corpus's tempos drawn for songs, the denoiser's prediction moved by the beat position
    run = Run(tmp_path / "diff")
    model = run.model("best")
    counts = np.asarray(model.denoiser.get_layer("clock").tempo_counts)
    assert counts.sum() == 3 * 10 * 4
    # every training window's steps counted into the moments the denoiser's targets are
    # standardized by (3 epochs of 10 steps of 4 windows of 16 steps)
    assert float(model.moments.count) == 3 * 10 * 4 * 16
    assert float(model.styles.count) == 3 * 10 * 4   # and every window's mean
    drawn = run.family.describe(model, GenerationRequest(n=4))["bpm"]
    assert set(drawn) <= set(np.flatnonzero(counts) + MIN_BPM)
    noisy = np.random.default_rng(0).standard_normal((1, 16, model.dim)).astype(np.float32)
    level, beats = np.array([0.5], np.float32), np.array([[127.0, 0.0]], np.float32)
    style = np.zeros((1, model.dim), np.float32)
    on_beat = np.asarray(model.denoiser([noisy, level, beats, style]))
    later = np.asarray(model.denoiser([noisy, level, beats + [[0.0, 0.5]], style]))
    assert np.abs(later - on_beat).max() > 1e-4
    restyled = np.asarray(model.denoiser([noisy, level, beats, style + 1.0]))
    assert np.abs(restyled - on_beat).max() > 1e-4   # it hears the style
    for bpm in ("96", "150"):
        status, printed, err = cli(capsys, "generate", tmp_path / "diff", "--n", "2",
                                   "--seconds", "1", "--bpm", bpm, "--out",
                                   tmp_path / f"b{bpm}", "--quiet")
        assert status == 0, err
        listing = json.loads((tmp_path / f"b{bpm}" / "index.json").read_text())["clips"]
        assert [c["bpm"] for c in listing] == [float(bpm)] * 2
        songs[bpm] = np.stack([sf.read(p)[0] for p in printed.split()])
    assert not np.allclose(songs["96"], songs["150"])   # same seed, another tempo
