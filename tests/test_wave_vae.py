"""wave-vae beyond the contract test (which trains, saves, encodes, decodes, generates and
exports its default, KL-regularized form): the KL divergence and the MMD it is held to the
prior with, the warm-up of their weight, each regularizer pulling the latents toward
N(0, I) when it is weighted, and the Wasserstein (mmd) form training through the CLI."""

import numpy as np
import pytest

from conftest import assert_refused, cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models.wave_vae import WaveVAE, WaveVAEConfig
from musicrgan.modules import gaussian
from musicrgan.runs import Run, read_history

import_tensorflow()


def test_kl_divergence_to_the_standard_normal():
    zeros = np.zeros((3, 5, 2), np.float32)
    assert float(gaussian.kl_to_standard_normal(zeros, zeros)) == pytest.approx(0.0, abs=1e-7)
    # mean 1, variance 1 in each of 2 channels: 0.5 * 1 per channel
    assert float(gaussian.kl_to_standard_normal(zeros + 1, zeros)) == pytest.approx(1.0)
    # variance e^-2: 0.5 * (e^-2 - 1 + 2) per channel
    assert float(gaussian.kl_to_standard_normal(zeros, zeros - 2)) == pytest.approx(
        np.exp(-2) + 1)


@pytest.mark.parametrize("kernel", gaussian.KERNELS)
def test_mmd_is_near_zero_for_the_prior_and_grows_away_from_it(kernel):
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((400, 4)).astype(np.float32)
    seed = np.array([1, 2], np.int32)

    def mmd(z):
        return float(gaussian.mmd_to_standard_normal(z, seed, kernel))
    at_prior, shifted, collapsed = mmd(draws), mmd(draws + 1.5), mmd(0.1 * draws)
    assert abs(at_prior) < 0.02, at_prior
    assert shifted > 10 * max(abs(at_prior), 1e-3) and collapsed > 10 * max(abs(at_prior), 1e-3)
    assert mmd(draws + 3.0) > shifted  # further away, larger


def test_the_regularizer_weight_warms_up_linearly():
    model = WaveVAE(WaveVAEConfig(channels=4, strides=[4], latent_dim=2, window=256,
                                  warmup_steps=8), 8000).build()
    factors = []
    for step in (0, 2, 4, 8, 20):
        model.optimizer.iterations.assign(step)
        factors.append(float(model.warmup()))
    np.testing.assert_allclose(factors, [0.0, 0.25, 0.5, 1.0, 1.0], atol=1e-6)


@pytest.mark.slow  # 80 s of CPU: four small trainings, each traced anew
@pytest.mark.parametrize("regularizer", ["kl", "mmd"])
def test_a_weighted_regularizer_pulls_the_latents_toward_the_prior(regularizer):
    """The same tiny model and data, the regularizer weighted 1e-6 or heavily: after the
    same steps, the heavy one's latents are much nearer N(0, I) by its own measure."""
    import keras
    rng = np.random.default_rng(0)
    t = np.arange(1024) / 8000
    audio = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 900, 16)])
    audio = (audio + 0.05 * rng.standard_normal(audio.shape)).astype(np.float32)
    measured = {}
    for weight in (1e-6, 5.0):
        keras.utils.set_random_seed(0)
        config = WaveVAEConfig(channels=4, strides=[4, 4], latent_dim=3, window=1024,
                               regularizer=regularizer, warmup_steps=1, kl_weight=weight,
                               mmd_weight=weight * 20, batch_size=8)
        model = WaveVAE(config, 8000).build()
        model.fit(audio, batch_size=8, epochs=15, verbose=0, shuffle=False)
        measured[weight] = model.evaluate(audio, batch_size=8, verbose=0, return_dict=True)[
            regularizer]
    assert measured[5.0] < measured[1e-6] / 3, measured


def test_the_wasserstein_form_trains_through_the_command_line(techno, tmp_path, capsys):
    folder = tmp_path / "wae"
    status, _, err = cli(capsys, "train", "new", folder, "--model", "wave-vae", "--data",
                         techno, "--config", tiny_config("wave-vae"), "--epochs", "2",
                         "--set", "regularizer=mmd", "--set", "kernel=rbf",
                         "--set", "steps_per_epoch=6", "--set", "seed=1")
    assert status == 0, err
    history = read_history(folder)
    assert {"mmd", "warmup", "reconstruction", "val_reconstruction"} <= set(history[0])
    assert "kl" not in history[0]
    # warm-up over 4 steps: the first epoch's mean factor is below the second's (1.0)
    assert float(history[0]["warmup"]) < float(history[1]["warmup"]) == 1.0
    assert float(history[1]["reconstruction"]) < float(history[0]["reconstruction"])
    run = Run(folder)
    latents = run.family.encode(run.model(), np.zeros((1, 4096), np.float32))
    assert latents.shape == (1, 4096 // 16, 4) and latents.dtype == np.float32

    assert_refused(cli(capsys, "train", "new", tmp_path / "bad", "--model", "wave-vae",
                       "--data", techno, "--set", "regularizer=gan"), "regularizer must be kl or mmd")
