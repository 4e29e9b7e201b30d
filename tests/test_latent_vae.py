"""latent-vae beyond the contract test (which trains it over the first continuous upstream
and checks what it declares): its two objectives' distances, the latent cache holding a
wave-vae's posterior, the hierarchy end to end through the CLI (wave-vae, latent-vae on its
posterior, generate, reconstruct), the upstreams it refuses, and interpolation between two
files (`generate --between`)."""

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import assert_refused, cli, tiny_config
from musicrgan import import_tensorflow
from musicrgan.models.latent_vae import (LatentVAE, LatentVAEConfig, gaussian_kl,
                                         gaussian_nll)
from musicrgan.models.vqvae import VQVAE, VQVAEConfig
from musicrgan.models.wave_vae import WaveVAE, WaveVAEConfig
from musicrgan.runs import Run, read_history

import_tensorflow()


def test_the_objectives_distances():
    zeros = np.zeros((2, 3, 4), np.float32)
    # KL between equal Gaussians is 0; N(1, 1) from N(0, 1): 0.5 per channel
    assert float(gaussian_kl(zeros, zeros, zeros, zeros)) == pytest.approx(0.0, abs=1e-7)
    assert float(gaussian_kl(zeros + 1, zeros, zeros, zeros)) == pytest.approx(2.0)
    # KL(N(0, e^-2) || N(0, 1)) = 0.5 (e^-2 + 2 - 1) per channel; not symmetric
    assert float(gaussian_kl(zeros, zeros - 2, zeros, zeros)) == pytest.approx(
        2 * (np.exp(-2) + 1))
    assert float(gaussian_kl(zeros, zeros, zeros, zeros - 2)) == pytest.approx(
        2 * (np.exp(2) - 3))
    # the negative log-likelihood of the mean under N(0, 1): 0.5 log(2 pi) per channel
    assert float(gaussian_nll(zeros, zeros, zeros)) == pytest.approx(2 * np.log(2 * np.pi))
    # a point one sigma away costs 0.5 more per channel; a narrower Gaussian costs less at
    # its mean
    assert float(gaussian_nll(zeros + 1, zeros, zeros)) == pytest.approx(
        2 * np.log(2 * np.pi) + 2.0)
    assert float(gaussian_nll(zeros, zeros, zeros - 2)) < float(gaussian_nll(zeros, zeros, zeros))


def test_latent_vae_refuses_upstreams_it_cannot_learn():
    posterior = LatentVAE(LatentVAEConfig(objective="posterior"), 8000)
    assert "codes of a codebook" in posterior.accepts(VQVAE(VQVAEConfig(), 8000))
    assert "needs the upstream's posterior" in posterior.accepts(
        WaveVAE(WaveVAEConfig(regularizer="mmd"), 8000))
    assert posterior.accepts(WaveVAE(WaveVAEConfig(), 8000)) is None
    trajectory = LatentVAE(LatentVAEConfig(), 8000)
    assert trajectory.accepts(WaveVAE(WaveVAEConfig(regularizer="mmd"), 8000)) is None


@pytest.fixture(scope="module")
def hierarchy(techno, tmp_path_factory):
    """A tiny wave-vae and a latent-vae trained on its posterior, through the CLI."""
    from musicrgan.cli import main
    root = tmp_path_factory.mktemp("hierarchy")
    assert main(["train", "new", str(root / "wave"), "--model", "wave-vae", "--data",
                 str(techno), "--config", str(tiny_config("wave-vae")), "--epochs", "1",
                 "--set", "seed=1"]) == 0
    assert main(["train", "new", str(root / "high"), "--model", "latent-vae", "--upstream",
                 str(root / "wave"), "--config", str(tiny_config("latent-vae")), "--epochs", "2",
                 "--set", "objective=posterior", "--set", "steps_per_epoch=6",
                 # the KL's weight stays low, so the reconstruction it trades against falls
                 "--set", "warmup_steps=1000", "--set", "seed=1"]) == 0
    return root


def test_the_hierarchy_trains_generates_and_reconstructs_through_the_cli(hierarchy, techno,
                                                                         tmp_path, capsys):
    wave, high = Run(hierarchy / "wave"), Run(hierarchy / "high")
    # the cache holds the wave-vae's posterior: means then log variances of each step
    cache = next((hierarchy / "wave" / "latents").iterdir())
    steps = np.load(next((cache / "train").glob("*.npy")))
    assert steps.dtype == np.float32 and steps.shape[1] == 2 * wave.family.latent_channels()
    history = read_history(high.path)
    assert {"reconstruction", "kl", "warmup", "val_reconstruction"} <= set(history[0])
    # it learns: the same validation windows come back closer (6 random training windows an
    # epoch are too few for the training mean to fall every time)
    assert float(history[1]["val_reconstruction"]) < float(history[0]["val_reconstruction"])

    status, printed, err = cli(capsys, "generate", high.path, "--n", "2", "--seconds", "1",
                               "--out", tmp_path / "songs", "--quiet")
    assert status == 0, err
    songs = [sf.read(line) for line in printed.split()]
    assert [(s.shape, rate) for s, rate in songs] == [((8000,), 8000)] * 2
    assert not np.array_equal(songs[0][0], songs[1][0])

    # one high-level latent per 4 wave-vae steps (strides 2, 2) of 16 samples: 64 samples
    family, model = high.family, high.model()
    assert family.latent_hop() == 64
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, (1, 1000)).astype(np.float32)
    assert family.encode(model, audio).shape == (1, 16, 4)   # padded to 1024 samples
    assert family.reconstruct(model, audio).shape == (1, 1000)
    loop = str(next((techno / "test").glob("*.wav")))
    status, printed, err = cli(capsys, "reconstruct", high.path, loop, "--out", tmp_path / "rec")
    assert status == 0, err and "visqol" in printed


def test_between_two_files_writes_the_path_in_the_high_level_space(hierarchy, techno,
                                                                   tmp_path, capsys):
    a, b = sorted((techno / "train").glob("*.wav"))[:2]
    out = tmp_path / "path"
    status, printed, err = cli(capsys, "generate", hierarchy / "high", "--between", a, b,
                               "--steps", "4", "--out", out)
    assert status == 0, err
    paths = printed.split()
    assert len(paths) == 4
    clips = [sf.read(p)[0] for p in paths]
    shortest = min(sf.info(a).frames, sf.info(b).frames)
    assert all(c.shape == (shortest,) for c in clips)
    # the ends are the files' reconstructions; the clips between are on the way from one to
    # the other
    run = Run(hierarchy / "high")
    ends = run.family.reconstruct(run.model(), np.stack([sf.read(p)[0][:shortest].astype(
        np.float32) for p in (a, b)]))
    np.testing.assert_allclose(clips[0], ends[0], atol=2e-4)  # (16-bit wavs)
    np.testing.assert_allclose(clips[-1], ends[1], atol=2e-4)
    def distance(x, y):
        return float(np.sqrt(np.mean((x - y) ** 2)))
    span = distance(clips[0], clips[-1])
    assert span > 0
    assert distance(clips[0], clips[1]) < span and distance(clips[2], clips[3]) < span
    assert distance(clips[0], clips[1]) < distance(clips[0], clips[2])
    listing = json.loads((out / "index.json").read_text())["clips"]
    assert sorted(c["position"] for c in listing) == pytest.approx([0, 1 / 3, 2 / 3, 1],
                                                                   abs=1e-3)


def test_between_is_refused_where_there_is_no_path(hierarchy, techno, tmp_path, capsys):
    from musicrgan.generate import continuous_encoder
    from musicrgan.models.base import RequestError
    with pytest.raises(RequestError, match="codes of a codebook"):
        continuous_encoder(VQVAE(VQVAEConfig(), 8000))
    a, b = sorted((techno / "train").glob("*.wav"))[:2]
    assert_refused(cli(capsys, "generate", hierarchy / "high", "--between", a, b, "--steps",
                       "1", "--out", tmp_path / "o"), "--steps must be between 2")
    assert_refused(cli(capsys, "generate", hierarchy / "high", "--between", a, tmp_path / "no.wav",
                       "--out", tmp_path / "o"), "--between", "cannot be read")
    assert_refused(cli(capsys, "generate", hierarchy / "high", "--between", a, b, "--prime", a,
                       "--out", tmp_path / "o"), "leave out --prime")


def test_analysis_measures():
    from musicrgan.analyze import frame_descriptors, pca_dimensions, smoothness, spearman
    rate, hop = 8000, 256
    t = np.arange(4 * hop) / rate
    # four frames: quiet low tone, loud low tone, quiet high tone, silence
    clip = np.concatenate([0.05 * np.sin(2 * np.pi * 200 * t[:hop]),
                           0.5 * np.sin(2 * np.pi * 200 * t[:hop]),
                           0.05 * np.sin(2 * np.pi * 2000 * t[:hop]), np.zeros(hop)])
    d = frame_descriptors(clip.astype(np.float32), rate, hop, 4)
    assert d["level_db"][1] - d["level_db"][0] == pytest.approx(20, abs=0.1)
    assert d["centroid_hz"][2] > 5 * d["centroid_hz"][0] and np.isnan(d["centroid_hz"][3])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200)
    assert spearman(x, x ** 3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    # five dimensions, the variance in two of them
    latents = np.concatenate([rng.standard_normal((500, 2)) * [6, 1],
                              1e-3 * rng.standard_normal((500, 3))], axis=1)
    pca = pca_dimensions(latents)["dimensions_for"]
    assert pca == {"80%": 1, "90%": 1, "95%": 1, "99%": 2}  # 36 : 1 : ~0
    assert smoothness([0, 1, 2, 3]) == 1.0 and smoothness([0, 2, 0, 2]) == pytest.approx(1 / 3)


def test_analyze_writes_the_numbers_and_a_page(hierarchy, techno, tmp_path, capsys):
    out = tmp_path / "analysis"
    status, printed, err = cli(capsys, "analyze", hierarchy / "wave", "--out", out, "--pairs",
                               "2", "--steps", "4", "--seconds", "1")
    assert status == 0, err
    assert "PCA:" in printed and "smoothness" in printed
    result = json.loads((out / "analysis.json").read_text())
    assert result["latent_dimensions"] == 4 and result["samples_per_step"] == 16
    assert [c["dimension"] for c in result["correlations"]] == [0, 1, 2, 3]
    assert all(c["level"] is None or -1 <= c["level"] <= 1 for c in result["correlations"])
    shares = list(result["pca"]["dimensions_for"].values())
    assert shares == sorted(shares) and 1 <= shares[0] and shares[-1] <= 4
    assert len(result["paths"]) == 2
    for path in result["paths"]:
        assert len(path["loudness"]) == len(path["centroid"]) == 4
        assert all(0 <= v <= 1 for v in path["smoothness"].values())
    assert len(list((out / "audio").glob("*.wav"))) == 8
    page = (out / "index.html").read_text()
    assert "PCA fidelity" in page and "img/paths.png" in page and (out / "img" / "paths.png").is_file()
    # a run without continuous latents is refused in one line
    assert_refused(cli(capsys, "analyze", tmp_path / "nothing", "--out", out), "nothing")
