"""spec-vae beyond the contract test (which covers its Gaussian, conv variant): the KL
annealing schedules, Griffin-Lim getting a sound back from its log-mel frames, and the
residual, vector-quantized variant training through the CLI (its reconstruction falling),
generating from its codebook's usage, and a code prior trained on its codes generating
through it."""

import numpy as np
import pytest
import soundfile as sf

from conftest import cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models.code_prior import CodePrior, CodePriorConfig
from musicrgan.models.spec_vae import SpecVAE, SpecVAEConfig
from musicrgan.modules.spectral import LogMel, griffin_lim, mel_to_magnitudes
from musicrgan.runs import Run, read_history

import_tensorflow()


def test_kl_weight_anneals_linearly_or_in_cycles():
    for anneal, expected in (("linear", [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]),
                             ("cyclic", [0.0, 0.5, 1.0, 1.0, 0.0, 0.5])):
        family = SpecVAE(SpecVAEConfig(anneal=anneal, anneal_steps=8, channels=4, mels=8,
                                       latent_dim=2), 8000)
        model = family.build()
        factors = []
        for step in (0, 2, 4, 6, 8, 10):
            model.optimizer.iterations.assign(step)
            factors.append(float(model.kl_factor()))
        np.testing.assert_allclose(factors, expected, atol=1e-6)


def hats_and_swells(rate):
    """Broadband, moving sound: its mel frames pin down its spectrum."""
    t = np.arange(2 * rate) / rate
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, t.size) * np.sin(2 * np.pi * 1.5 * t)
    return noise[None].astype("float32")


def test_griffin_lim_finds_phases_that_give_back_the_log_mel_frames():
    rate = 8000
    log_mel = LogMel(rate, 256, 64, 32)
    frames = np.asarray(log_mel(hats_and_swells(rate)))
    assert frames.shape == (1, 2 * rate // 64, 32)
    start, fast, original = (inversion_error(log_mel, frames, n, momentum)
                             for n, momentum in ((0, 0.99), (16, 0.99), (16, 0.0)))
    # random phases: the frames overlap inconsistently and the sound smears (0.76 when
    # written); 16 iterations come close (0.083)
    assert fast < start / 4 and fast < 0.2, (start, fast)
    # the fast algorithm's momentum gets closer in as many iterations than the 1984 one
    # (0.083 against 0.103 when written)
    assert fast < 0.9 * original, (fast, original)


def inversion_error(log_mel, frames, iterations, momentum):
    """Mean absolute error of the log-mel frames of Griffin-Lim's audio."""
    audio = griffin_lim(log_mel, frames, iterations, momentum=momentum)
    return np.abs(np.asarray(log_mel(audio)) - frames).mean()


def test_mel_to_magnitudes_fits_the_frames_better_than_the_clipped_pseudo_inverse():
    rate = 8000
    log_mel = LogMel(rate, 256, 64, 32)
    frames = np.asarray(log_mel(hats_and_swells(rate)))
    magnitudes = np.asarray(mel_to_magnitudes(log_mel, frames))
    clipped = np.maximum((np.exp(frames) - 1e-5) @ log_mel.pseudo_inverse, 0.0)
    assert magnitudes.shape == clipped.shape and magnitudes.min() >= 0
    ours, baseline = (mel_misfit(log_mel, frames, m) for m in (magnitudes, clipped))
    assert ours < baseline / 10, (ours, baseline)  # 2.9e-6 against 1.6e-4 when written


def mel_misfit(log_mel, frames, magnitudes):
    """How far the magnitudes' mel projection is from the log-mel frames."""
    return np.abs(np.log(magnitudes @ log_mel.bank + 1e-5) - frames).mean()


@pytest.mark.slow  # 50 s of CPU: two trainings, Griffin-Lim, a chain's generation
def test_vq_residual_variant_trains_generates_and_feeds_a_code_prior(techno, tmp_path,
                                                                     capsys):
    folder = tmp_path / "vq"
    status, _, err = cli(capsys, "train", "new", folder, "--model", "spec-vae", "--data",
                         techno, "--config", tiny_config("spec-vae"), "--epochs", "2",
                         "--set", "latent=vq", "--set", "variant=residual", "--set", "codes=8",
                         "--set", "steps_per_epoch=12", "--set", "seed=1")
    assert status == 0, err
    history = read_history(folder)
    assert {"perplexity", "dead_codes", "commitment"} <= set(history[0])
    first, last = (float(row["reconstruction"]) for row in (history[0], history[-1]))
    assert last < first, (first, last)

    run = Run(folder)
    model = run.model("best")
    assert run.family.codebook_size() == 8
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, (1, run.family.window()))
    codes = run.family.encode(model, audio.astype("float32"))
    assert codes.dtype == np.int32 and codes.max() < 8
    assert CodePrior(CodePriorConfig(), 8000).accepts(run.family) is None

    status, printed, err = cli(capsys, "generate", folder, "--n", "2", "--seconds", "1",
                               "--out", tmp_path / "songs", "--quiet")
    assert status == 0, err
    assert len(printed.split()) == 2

    # its codes are a code prior's to learn: the chain trains and generates through the CLI
    prior = tmp_path / "prior"
    status, _, err = cli(capsys, "train", "new", prior, "--model", "code-prior", "--upstream",
                         folder, "--config", tiny_config("code-prior"), "--epochs", "1")
    assert status == 0, err
    status, printed, err = cli(capsys, "generate", prior, "--n", "1", "--seconds", "1",
                               "--out", tmp_path / "prior-songs", "--quiet")
    assert status == 0, err
    song, rate = sf.read(printed.split()[0])
    assert rate == 8000 and song.shape == (8000,) and np.isfinite(song).all()
