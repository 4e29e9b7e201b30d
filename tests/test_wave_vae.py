"""wave-vae beyond the contract test (which trains, saves, encodes, decodes, generates and
exports its default, KL-regularized form): the KL divergence and the MMD it is held to the
prior with, the warm-up of their weight, each regularizer pulling the latents toward
N(0, I) when it is weighted, the Wasserstein (mmd) form training through the CLI, and the
multi-band (PQMF) front end: its filter bank reconstructing what it splits, and a wave-vae on
it training, reloading and exporting; the adversarial phase, and a budget (compare's)
split between the phases."""

import numpy as np
import pytest

from conftest import (assert_refused, cli, kill_after_epochs, onnx_decoder_output, run_cli,
                      tiny_config)
from musicrgan import import_tensorflow
from musicrgan.latents import fingerprint
from musicrgan.models.base import ConfigError
from musicrgan.models.wave_vae import WaveVAE, WaveVAEConfig
from musicrgan.modules import gaussian
from musicrgan.modules.pqmf import PQMFAnalysis, PQMFSynthesis
from musicrgan.runs import Run, read_history, state_from_history

import_tensorflow()


def test_kl_divergence_to_the_standard_normal():
    zeros = np.zeros((3, 5, 2), np.float32)
    assert float(gaussian.kl_to_standard_normal(zeros, zeros)) == pytest.approx(0.0, abs=1e-7)
    # mean 1, variance 1 in each of 2 channels: 0.5 * 1 per channel
    assert float(gaussian.kl_to_standard_normal(zeros + 1, zeros)) == pytest.approx(1.0)
    # variance e^-2: 0.5 * (e^-2 - 1 + 2) per channel
    assert float(gaussian.kl_to_standard_normal(zeros, zeros - 2)) == pytest.approx(
        np.exp(-2) + 1)


def _mmd(z, kernel):
    return float(gaussian.mmd_to_standard_normal(z, np.array([1, 2], np.int32), kernel))


@pytest.mark.parametrize("kernel", gaussian.KERNELS)
def test_mmd_is_near_zero_for_the_prior_and_grows_away_from_it(kernel):
    draws = np.random.default_rng(0).standard_normal((400, 4)).astype(np.float32)
    at_prior = _mmd(draws, kernel)
    shifted, collapsed = _mmd(draws + 1.5, kernel), _mmd(0.1 * draws, kernel)
    assert abs(at_prior) < 0.02, at_prior
    assert shifted > 10 * max(abs(at_prior), 1e-3) and collapsed > 10 * max(abs(at_prior), 1e-3)
    assert _mmd(draws + 3.0, kernel) > shifted  # further away, larger


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


def train_tiny(capsys, folder, techno, *settings):
    """A tiny wave-vae with these `key=value` settings, 2 epochs of 6 steps through the CLI:
    its history."""
    status, _, err = cli(capsys, "train", "new", folder, "--model", "wave-vae", "--data",
                         techno, "--config", tiny_config("wave-vae"), "--epochs", "2",
                         "--set", "steps_per_epoch=6", "--set", "seed=1",
                         *[arg for setting in settings for arg in ("--set", setting)])
    assert status == 0, err
    return read_history(folder)


@pytest.mark.slow  # 20 s: the contract test trains the KL form through the CLI already
def test_the_wasserstein_form_trains_through_the_command_line(techno, tmp_path, capsys):
    folder = tmp_path / "wae"
    history = train_tiny(capsys, folder, techno, "regularizer=mmd", "kernel=rbf")
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


@pytest.mark.parametrize("bands", [2, 4, 16])
def test_the_filter_bank_splits_audio_into_bands_and_puts_it_back(bands):
    rate, samples = 16000, 8192
    analysis, synthesis = PQMFAnalysis(bands), PQMFSynthesis(bands)
    noise = (0.1 * np.random.default_rng(0).standard_normal((2, samples))).astype("float32")
    split = np.asarray(analysis(noise))
    assert split.shape == (2, samples // bands, bands)
    back = np.asarray(synthesis(split))
    assert back.shape == noise.shape
    inner = slice(analysis.taps, -analysis.taps)  # the ends hear the zero padding
    error = back[:, inner] - noise[:, inner]
    snr = 10 * np.log10(np.sum(noise[:, inner] ** 2) / np.sum(error ** 2))
    assert snr > 50, snr  # 58 dB when written: no delay, no aliasing left
    # a tone in the middle of band 1 comes out of band 1 alone
    t = np.arange(samples) / rate
    tone = np.sin(2 * np.pi * 1.5 * (rate / 2 / bands) * t)[None].astype("float32")
    energy = np.sum(np.asarray(analysis(tone))[0] ** 2, axis=0)
    assert energy.argmax() == 1 and energy[1] > 0.99 * energy.sum(), energy


@pytest.mark.slow  # 14 s: an option, not the default (the filter bank's test above is fast)
def test_a_multi_band_wave_vae_trains_reloads_and_exports(techno, tmp_path, capsys):
    folder = tmp_path / "bands"
    history = train_tiny(capsys, folder, techno, "bands=4", "strides=[2, 2]", "decoder=conv")
    assert float(history[1]["reconstruction"]) < float(history[0]["reconstruction"])
    run = Run(folder)
    model = run.model()
    assert [layer.name for layer in model.encoder.layers][1] == "pqmf_analysis"
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 4096)).astype("float32")
    latents = run.family.encode(model, audio)
    assert latents.shape == (1, 4096 // 16, 4)  # 4 bands x strides 2, 2
    assert run.family.reconstruct(model, audio).shape == audio.shape
    status, err, exported = onnx_decoder_output(capsys, folder, tmp_path / "onnx", latents)
    assert status == 0, err
    np.testing.assert_allclose(exported, run.family.decode(model, latents), rtol=1e-3,
                               atol=1e-4)

    assert_refused(cli(capsys, "train", "new", tmp_path / "bad", "--model", "wave-vae",
                       "--data", techno, "--set", "bands=0"), "bands must be >= 1")


@pytest.mark.slow  # 15 s: an option, not the default (vqvae's tests cover the decoder)
def test_a_wave_vae_with_vqvaes_decoder_and_terms_learns_reloads_and_refuses_sub_bands(
        techno, tmp_path, capsys):
    folder = tmp_path / "istft"
    history = train_tiny(capsys, folder, techno, "decoder=istft", "istft_fft=64",
                         "convergence_weight=1", "moments_weight=3")
    assert float(history[1]["reconstruction"]) < float(history[0]["reconstruction"])
    run = Run(folder)
    model = run.model()
    assert "inverse_stft" in [layer.name for layer in model.decoder.layers]
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 4096)).astype("float32")
    assert run.family.reconstruct(model, audio).shape == audio.shape
    # the reloaded model trains on vqvae's terms with the run's weights
    assert (model.distance.convergence, model.distance.moments) == (1.0, 3.0)
    quieter = 0.3 * audio
    with_moments = float(model.distance(audio, quieter))
    model.distance.moments = 0.0
    assert with_moments > float(model.distance(audio, quieter))
    assert_refused(cli(capsys, "train", "new", tmp_path / "bad", "--model", "wave-vae",
                       "--data", techno, "--set", "decoder=istft", "--set", "bands=16",
                       "--set", "strides=[2, 2, 2]"), "decoder: istft makes the samples")


def _weights(path):
    import keras
    model = keras.saving.load_model(path, safe_mode=True)
    return ([np.asarray(w) for w in model.encoder.weights],
            [np.asarray(w) for w in model.decoder.weights], model)


@pytest.mark.slow  # 57 s on 2 cores (2026-11-30), the fast suite's biggest: with its kill -9
# twin below, in the slow suite
def test_adversarial_phase_fine_tunes_the_decoder_alone(techno, tmp_path, capsys):
    """Autoencoder phase, then `train continue --phase adversarial`: each epoch's phase in
    the history, the encoder untouched, the decoder and the discriminator trained, the
    autoencoder phase's best kept apart and nameable, no way back."""
    folder = tmp_path / "run"
    assert cli(capsys, "train", "new", folder, "--model", "wave-vae", "--data", techno,
               "--config", tiny_config("wave-vae"), "--epochs", "1")[0] == 0
    encoder_before, decoder_before, _ = _weights(folder / "model.keras")
    status, _, err = cli(capsys, "train", "continue", folder, "--phase", "adversarial",
                         "--epochs", "1")
    assert status == 0, err
    history = read_history(folder)
    assert [r["phase"] for r in history] == ["autoencoder", "adversarial"]
    assert {"d_loss", "g_adversarial", "feature_matching"} <= set(history[1])
    encoder_after, decoder_after, model = _weights(folder / "model.keras")
    for a, b in zip(encoder_before, encoder_after):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(decoder_before, decoder_after))
    assert int(model.critic_optimizer.iterations) == int(model.optimizer.iterations) == 3
    kept, _, _ = _weights(folder / "best-autoencoder.keras")
    for a, b in zip(encoder_before, kept):
        np.testing.assert_array_equal(a, b)
    assert Run(folder).checkpoint("best-autoencoder").name == "best-autoencoder.keras"
    assert_refused(cli(capsys, "reconstruct", folder, str(next((techno / "test").glob("*.wav"))),
                       "--out", tmp_path / "r", "--checkpoint", "best-adversarial"),
                   "checkpoint must be one of best, last, best-autoencoder")
    assert_refused(cli(capsys, "train", "continue", folder, "--phase", "autoencoder"),
                   "cannot go back")


@pytest.mark.slow  # 40 s: a training process killed mid-phase, then continued
def test_adversarial_phase_fine_tunes_the_decoder_alone_and_survives_kill_minus_nine(
        techno, tmp_path, capsys):
    """Autoencoder phase, then `train continue --phase adversarial` killed -9 mid-phase and
    continued: every epoch once with its phase, the encoder untouched, the decoder changed,
    the discriminator's optimizer resumed, the autoencoder phase's best kept apart."""
    import json
    import subprocess
    import sys
    folder = tmp_path / "run"
    assert cli(capsys, "train", "new", folder, "--model", "wave-vae", "--data", techno,
               "--config", tiny_config("wave-vae"), "--epochs", "1",
               "--set", "discriminator=multiperiod")[0] == 0
    encoder_before, decoder_before, _ = _weights(folder / "model.keras")

    proc = subprocess.Popen([sys.executable, "-m", "musicrgan", "train", "continue", str(folder),
                             "--phase", "adversarial", "--epochs", "200"],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = kill_after_epochs(proc, folder, 3, timeout=240)
    assert 3 <= done < 200

    status, _, err = cli(capsys, "train", "continue", folder, "--epochs", "1")  # stays adversarial
    assert status == 0, err
    history = read_history(folder)
    assert [int(r["epoch"]) for r in history] == list(range(1, done + 2))
    assert [r["phase"] for r in history] == ["autoencoder"] + ["adversarial"] * done
    assert {"d_loss", "g_adversarial", "feature_matching"} <= set(history[-1])
    state = json.loads((folder / "state.json").read_text())
    assert state["phase"] == "adversarial"
    # the adversarial phase's best is its own: the lowest val_frechet (the test clips'
    # reconstructions' distance) of its epochs
    assert state["best"] == pytest.approx(min(float(r["val_frechet"]) for r in history[1:]))

    encoder_after, decoder_after, model = _weights(folder / "model.keras")
    for a, b in zip(encoder_before, encoder_after):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(decoder_before, decoder_after))
    steps = 3 * done  # tiny: 3 steps an epoch, all adversarial epochs but the first
    assert int(model.critic_optimizer.iterations) == int(model.optimizer.iterations) == steps
    kept, _, _ = _weights(folder / "best-autoencoder.keras")
    for a, b in zip(encoder_before, kept):
        np.testing.assert_array_equal(a, b)

    # the kept best is a checkpoint reconstruct and evaluate can name; others are refused
    run = Run(folder)
    assert run.checkpoint("best-autoencoder").name == "best-autoencoder.keras"
    assert_refused(cli(capsys, "reconstruct", folder, str(next((techno / "test").glob("*.wav"))),
                       "--out", tmp_path / "r", "--checkpoint", "best-adversarial"),
                   "checkpoint must be one of best, last, best-autoencoder")
    assert_refused(cli(capsys, "train", "continue", folder, "--phase", "autoencoder"),
                   "cannot go back")
    # a state.json rebuilt from history.csv (`train continue --repair`) knows the phase and
    # its best
    repaired = state_from_history(folder)
    assert (repaired["phase"], repaired["epochs_done"]) == (state["phase"], state["epochs_done"])
    assert repaired["best"] == pytest.approx(state["best"], rel=1e-6)  # (history rounds)


def test_phases_are_refused_where_they_do_not_apply(techno, tmp_path, capsys):
    folder = tmp_path / "run"
    assert_refused(cli(capsys, "train", "new", folder, "--model", "wave-vae", "--data", techno,
                       "--phase", "adversarial"), "--phase is for train continue")
    assert cli(capsys, "train", "new", folder, "--model", "fft-lstm", "--data", techno,
               "--config", tiny_config("fft-lstm"), "--epochs", "1")[0] == 0
    assert_refused(cli(capsys, "train", "continue", folder, "--phase", "adversarial"),
                   "fft-lstm trains in one phase")


def test_a_budget_is_split_between_the_phases_as_configured():
    alone = WaveVAE(WaveVAEConfig(adversarial_share=0), 16000).budget_phases()
    assert alone == (("autoencoder", 1.0),)
    planned = WaveVAE(WaveVAEConfig(adversarial_share=0.25), 16000).budget_phases()
    assert planned == (("autoencoder", 0.75), ("adversarial", 1.0))
    with pytest.raises(ConfigError, match="adversarial_share"):
        WaveVAEConfig(adversarial_share=1.0).validate()


CHAIN = "wave-vae+latent-diffusion"


def compare_chain(techno, out, wave_config):
    """A 0.01-minute compare of CHAIN with tiny configs, through the real command line."""
    return run_cli("compare", "--data", techno, "--models", CHAIN, "--budget-minutes", "0.01",
                   "--out", out, "--n", "2", "--seconds", "1", "--config",
                   f"wave-vae={wave_config}", "--config",
                   f"latent-diffusion={tiny_config('latent-diffusion')}", "--quiet")


@pytest.mark.slow  # 45 s: a chain of two tiny runs through compare, then compare again
def test_compare_trains_a_chains_wave_vae_through_both_phases(techno, tmp_path):
    """adversarial_share: compare's budget takes the first stage through its autoencoder
    phase and then its adversarial one (at least a step each, however small the budget),
    the second stage trains on the fine-tuned run (the latents of its frozen encoder), and
    a second compare over the folder trains nothing again."""
    config = tmp_path / "wave-vae.yaml"
    config.write_text(tiny_config("wave-vae").read_text() + "\nadversarial_share: 0.5\n")
    proc = compare_chain(techno, tmp_path / "o", config)
    assert proc.returncode == 0, proc.stderr
    first = tmp_path / "o" / "runs" / CHAIN / "wave-vae"
    assert [r["phase"] for r in read_history(first)] == ["autoencoder", "adversarial"]
    assert "(adversarial phase)" in proc.stderr
    second = Run(tmp_path / "o" / "runs" / CHAIN / "latent-diffusion")
    assert second.config["upstream"]["fingerprint"] == fingerprint(first / "best.keras")
    encoder_before, decoder_before, _ = _weights(first / "best-autoencoder.keras")
    encoder_after, decoder_after, _ = _weights(first / "best.keras")
    for a, b in zip(encoder_before, encoder_after):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(decoder_before, decoder_after))

    again = compare_chain(techno, tmp_path / "o", config)
    assert again.returncode == 0, again.stderr
    assert "training for" not in again.stderr and "training (" not in again.stderr
    assert len(read_history(first)) == 2
