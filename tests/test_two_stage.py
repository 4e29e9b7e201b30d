"""Compress, then generate: a tiny vqvae, a code-prior trained on its latents (`--upstream`),
generation decoded through the vqvae; the latent cache built once per upstream checkpoint,
reused, resumed after kill -9; a changed or missing upstream refused by name."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import (assert_keeps_the_pulse, assert_refused, chord, cli, onnx_decoder_output,
                      run_cli, start_cli, tiny_config, wait_until, write_wav)
from musicrgan.modules.transformer import CachedSampler
from musicrgan import evaluate
from musicrgan.data import corpus_clips
from musicrgan.metrics import METRIC_RATE
from musicrgan.runs import Run, read_history


@pytest.fixture(scope="module")
def vqvae(techno, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_stage") / "vq"
    from musicrgan.cli import main
    assert main(["train", "new", str(folder), "--model", "vqvae", "--data", str(techno),
                 "--config", str(tiny_config("vqvae")), "--epochs", "1"]) == 0
    return folder


def prior(capsys, folder, upstream, *extra):
    return cli(capsys, "train", "new", folder, "--model", "code-prior", "--upstream", upstream,
               "--config", tiny_config("code-prior"), "--epochs", "1", *extra)


def test_the_chain_end_to_end_with_one_cache_per_checkpoint(vqvae, techno, tmp_path, capsys,
                                                            monkeypatch):
    """The chain through the CLI: the corpus encoded once per upstream checkpoint, priors
    trained on it (one with the beat clock: check_the_clock), songs generated and primed."""
    status, _, err = prior(capsys, tmp_path / "p1", vqvae, "--set", "clock=false")
    assert status == 0, err
    # the corpus, encoded once: 3 test files, 3 train files at 4 offsets (shifted_views)
    assert "encoding 15 corpus files" in err
    recorded = yaml.safe_load((tmp_path / "p1" / "config.yaml").read_text())
    assert recorded["data"] == str(techno.resolve())  # the upstream's corpus by default
    upstream = recorded["upstream"]
    assert upstream["run"] == str(vqvae.resolve()) and upstream["checkpoint"] == "best.keras"
    from musicrgan.latents import cache_folder
    cache = cache_folder(Run(vqvae), upstream["fingerprint"], str(techno))
    assert cache.parent == vqvae / "latents"
    assert (cache / "complete.json").is_file()
    name = sorted(os.listdir(cache / "train"))[0]
    codes = np.load(cache / "train" / name)
    frames = sf.info(str(techno / "train" / name[:-len(".npy")])).frames
    assert codes.dtype == np.int16 and codes.max() < 16 and codes.size == -(-frames // 16)

    # a second prior reuses the cache; this one hears the beat clock (the default)
    status, _, err = prior(capsys, tmp_path / "p2", vqvae)
    assert status == 0 and "encoding" not in err
    check_the_clock(tmp_path / "p2", techno, cache, tmp_path, capsys)

    out = tmp_path / "songs"
    status, printed, err = cli(capsys, "generate", tmp_path / "p1", "--n", "2", "--seconds",
                               "0.5", "--out", out, "--quiet")
    assert status == 0, err
    songs = [sf.read(p)[0] for p in printed.split()]
    assert [s.size for s in songs] == [4000, 4000] and not np.array_equal(*songs)
    listing = json.loads((out / "index.json").read_text())["clips"]
    assert {c["family"] for c in listing} == {"code-prior"}

    # top_k 1 draws the likeliest code every time: the seed no longer matters
    greedy = [cli(capsys, "generate", tmp_path / "p1", "--n", "1", "--seconds", "0.5",
                  "--top-k", "1", "--seed", seed, "--out", tmp_path / f"g{seed}", "--quiet")
              for seed in ("1", "2")]
    assert [g[0] for g in greedy] == [0, 0]
    a, b = (sf.read(g[1].strip())[0] for g in greedy)
    np.testing.assert_array_equal(a, b)

    # a prime is encoded by the upstream and continued: the first chunk's prefix is the start
    # token and the last half-context of the prime's codes. (Comparing the audio with an
    # unprimed song instead failed on a machine where the one-epoch prior's likeliest code
    # did not depend on its context.)
    run = Run(tmp_path / "p1")
    run.upstream()   # attached: the family encodes through it
    up, half = run.family.upstream_family, run.family.config.context // 2
    prime = write_wav(tmp_path / "prime.wav", chord(1.0, 8000), 8000)
    prefixes = []
    monkeypatch.setattr(CachedSampler, "sample", recording(CachedSampler.sample, prefixes))
    status, printed, err = cli(capsys, "generate", tmp_path / "p1", "--n", "1", "--seconds",
                               "0.5", "--prime", prime, "--out", tmp_path / "primed", "--quiet")
    assert status == 0, err
    window = json.loads((tmp_path / "primed" / "index.json").read_text())["clips"][0]["window"]
    heard = sf.read(prime, dtype="float32")[0][:round(window * 8000)]
    codes = up.encode(run.family.upstream_model, heard[None])
    np.testing.assert_array_equal(prefixes[0],
                                  [[run.family.start_token, *codes[0, -(half - 1):]]])
    assert sf.read(printed.strip())[0].size == 4000
    # a prime of three codes (48 samples), shorter than half the context, is continued whole
    prefixes.clear()
    status, printed, err = cli(capsys, "generate", tmp_path / "p1", "--n", "1", "--seconds",
                               "0.5", "--prime", prime, "--window", "0.006",
                               "--out", tmp_path / "short", "--quiet")
    assert status == 0, err
    codes = up.encode(run.family.upstream_model, heard[None, :48])
    assert codes.shape == (1, 3)
    np.testing.assert_array_equal(prefixes[0], [[run.family.start_token, *codes[0]]])


def recording(sample, prefixes):
    """CachedSampler.sample, keeping the prefix of every call."""
    def wrapped(self, prefix, *args, **kwargs):
        prefixes.append(np.array(prefix))
        return sample(self, prefix, *args, **kwargs)
    return wrapped


def check_the_clock(folder, techno, cache, tmp_path, capsys):
    """`clock: true`: training windows of codes come with their beat grid, and the tempos
    are counted; the sampling step hears the same clock as the whole model (logits equal
    position by position), the clock changes what it predicts; generate takes --bpm and
    otherwise draws the corpus's tempos."""
    from musicrgan.beats import MIN_BPM, corpus_grids, find_grid, grid_at
    from musicrgan.latents import LatentSource
    from musicrgan.models.base import GenerationRequest
    from musicrgan.modules.transformer import TransformerStep
    from musicrgan.runs import Run

    run = Run(folder)
    model, hop = run.model("best"), run.family.upstream_family.latent_hop()
    clock = model.get_layer("clock")
    low, high = np.asarray(clock.tempo_range)
    wavs = sorted(map(str, (techno / "train").glob("*.wav")))
    tempos = [g[0].bpm for g in corpus_grids(techno, wavs)]
    counts = np.asarray(clock.tempo_counts)
    assert counts.sum() == 3 * 4    # every training window counted (3 steps of 4), once
    counted = set(np.flatnonzero(counts) + MIN_BPM)
    assert counted <= {round(t) for t in tempos}
    # the range spans the tempos of the windows drawn (12 random windows of 4 files need
    # not include the corpus's slowest and fastest)
    assert min(tempos) - 0.01 <= low <= high <= max(tempos) + 0.01
    assert round(low) == min(counted) and round(high) == max(counted)
    drawn = run.family.describe(model, GenerationRequest(n=4))["bpm"]
    assert set(drawn) <= set(np.flatnonzero(counts) + MIN_BPM)
    loop = sf.read(wavs[0], dtype="float32")[0]   # 4 s of a loop: long enough for a grid
    primed = run.family.describe(model, GenerationRequest(n=1, prime=loop[None]))["bpm"]
    assert primed == [round(find_grid(loop, 8000).bpm, 2)]   # a prime's own tempo

    source = LatentSource(cache, "train", 16, (techno, hop, 8000))
    windows = source.sequential_windows()
    (codes, beats), (_, later) = next(windows), next(windows)   # steps 0-15, 16-31 of a file
    grid = grid_at(source.grids[0], 0.0)
    np.testing.assert_allclose(beats, [grid.bpm, grid.beat_at(0.0)], atol=1e-4)
    np.testing.assert_allclose(later, [grid.bpm, grid.beat_at(16 * hop / 8000)], atol=1e-4)
    # a shifted view's windows start later in the file by its offset (a quarter of a code)
    shifted = LatentSource(cache, "train", 16, (techno, hop, 8000), offsets=(hop // 4,))
    _, beats = next(shifted.sequential_windows())
    assert source.grids[0] == shifted.grids[0]
    np.testing.assert_allclose(beats, [grid.bpm, grid.beat_at(hop / 4 / 8000)], atol=1e-4)

    tokens = np.concatenate([[run.family.start_token], codes[:-1]])[None].astype(np.int32)
    beats = np.array([[127.0, 1.3]], np.float32)
    whole = np.asarray(model([tokens, beats]))[0]
    step = TransformerStep(model)
    caches = step.empty_caches(1)
    for position in range(tokens.shape[1]):
        logits, *caches = step(tokens[:, position], np.array([position], np.int32), caches, beats)
        np.testing.assert_allclose(np.asarray(logits)[0], whole[position], atol=1e-4)
    elsewhere = np.asarray(model([tokens, beats + [[0.0, 0.5]]]))[0]
    assert np.abs(elsewhere - whole).max() > 1e-3   # half a beat later: other predictions
    # dropout (the default's 0.1) in training only: the sampling step above has none
    assert np.abs(np.asarray(model([tokens, beats], training=True))[0] - whole).max() > 1e-3

    # primed songs at the tempo asked (--bpm wins over a prime's own)
    prime = write_wav(tmp_path / "clocked.wav", sf.read(wavs[0])[0][:8000], 8000)
    status, printed, err = cli(capsys, "generate", folder, "--n", "2", "--seconds", "0.5",
                               "--bpm", "131", "--prime", prime, "--out", tmp_path / "clocked",
                               "--quiet")
    assert status == 0, err
    listing = json.loads((tmp_path / "clocked" / "index.json").read_text())["clips"]
    assert [c["bpm"] for c in listing] == [131.0, 131.0]


def encoder_weights(path):
    import keras
    return [np.asarray(w) for w in keras.saving.load_model(path).encoder.weights]


def codes_and_decoding(folder, checkpoint, audio):
    """What a vqvae run's checkpoint encodes `audio` to, and decodes those codes to."""
    run = Run(folder)
    model = run.model(checkpoint)
    codes = run.family.encode(model, audio)
    return codes, run.family.decode(model, codes)


@pytest.mark.slow  # 30 s: an adversarial epoch and a prior over it
def test_vqvaes_adversarial_phase_keeps_the_codes_and_tunes_the_decoder(techno, tmp_path,
                                                                         capsys):
    """`train continue --phase adversarial` on a vqvae: it starts from the autoencoder
    phase's best (not its last epoch), encoder and codebook frozen, so the codes a prior
    learns stay what that best gave; the decoder and the discriminator trained; a
    code-prior over the tuned vqvae generates."""
    folder = tmp_path / "vq"
    assert cli(capsys, "train", "new", folder, "--model", "vqvae", "--data", techno,
               "--config", tiny_config("vqvae"), "--epochs", "1")[0] == 0
    shutil.copyfile(folder / "model.keras", tmp_path / "epoch1.keras")
    assert cli(capsys, "train", "continue", folder, "--epochs", "1")[0] == 0
    shutil.copyfile(folder / "model.keras", tmp_path / "epoch2.keras")
    shutil.copyfile(tmp_path / "epoch1.keras", folder / "best.keras")  # as if epoch 1 were best
    audio = np.stack(corpus_clips(techno, "test", 1.0, 2, rate=Run(folder).rate))
    codes_before, decoded_before = codes_and_decoding(folder, "best", audio)
    status, _, err = cli(capsys, "train", "continue", folder, "--phase", "adversarial",
                         "--epochs", "1")
    assert status == 0, err
    history = read_history(folder)
    assert [r["phase"] for r in history] == ["autoencoder", "autoencoder", "adversarial"]
    assert {"d_loss", "g_adversarial", "feature_matching"} <= set(history[2])
    tuned = encoder_weights(folder / "model.keras")
    for a, b in zip(encoder_weights(tmp_path / "epoch1.keras"), tuned):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b)
               for a, b in zip(encoder_weights(tmp_path / "epoch2.keras"), tuned))
    codes_after, decoded_after = codes_and_decoding(folder, "last", audio)
    np.testing.assert_array_equal(codes_before, codes_after)
    assert np.abs(decoded_after - decoded_before).max() > 1e-4
    model = Run(folder).model("last")
    assert int(model.critic_optimizer.iterations) == int(model.optimizer.iterations) == 3
    assert Run(folder).checkpoint("best-autoencoder").is_file()

    status, _, err = prior(capsys, tmp_path / "p", folder)
    assert status == 0, err
    status, printed, err = cli(capsys, "generate", tmp_path / "p", "--n", "1", "--seconds",
                               "0.5", "--out", tmp_path / "songs", "--quiet")
    assert status == 0, err
    assert sf.read(printed.strip())[0].size == 4000


def test_a_changed_or_missing_upstream_is_named(vqvae, tmp_path, capsys):
    upstream = tmp_path / "vq"
    shutil.copytree(vqvae, upstream)
    assert prior(capsys, tmp_path / "p", upstream)[0] == 0
    (upstream / "best.keras").write_bytes((upstream / "model.keras").read_bytes() + b"\0")
    for command in (["generate", tmp_path / "p", "--out", tmp_path / "o"],
                    ["train", "continue", tmp_path / "p", "--epochs", "1"]):
        assert_refused(cli(capsys, *command), str(upstream), "changed since")
    shutil.rmtree(upstream)
    assert_refused(cli(capsys, "generate", tmp_path / "p", "--out", tmp_path / "o"),
                   str(upstream), "missing")
    # the clock is the Transformer's
    assert_refused(prior(capsys, tmp_path / "lstm", vqvae, "--set", "clock=true", "--set",
                         "architecture=lstm"), "clock: true (the default) needs architecture")
    assert_refused(prior(capsys, tmp_path / "d", vqvae, "--set", "dropout=1"), "dropout")
    assert_refused(prior(capsys, tmp_path / "v", vqvae, "--set", "shifted_views=0"),
                   "shifted_views")
    # and a second stage needs an upstream whose latents it can learn
    assert_refused(cli(capsys, "train", "new", tmp_path / "x", "--model", "code-prior",
                       "--data", vqvae.parent), "upstream")


@pytest.mark.slow  # 30 s of subprocesses
def test_kill_minus_nine_while_caching_then_training_resumes(vqvae, tmp_path):
    """Encoding is slowed to a file a second so the kill lands mid-cache; the next
    `train new` finishes the cache (the files done are kept) and trains."""
    upstream = tmp_path / "vq"
    shutil.copytree(vqvae, upstream, ignore=shutil.ignore_patterns("latents"))
    slow = ("import time; import musicrgan.models.vqvae as v; encode = v.VQVAE.encode\n"
            "def slow(self, model, audio):\n    time.sleep(0.5); return encode(self, model, audio)\n"
            "v.VQVAE.encode = slow")
    proc = start_cli(slow, "train", "new", tmp_path / "p", "--model", "code-prior", "--upstream",
                     upstream, "--config", tiny_config("code-prior"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: len(list(upstream.rglob("*.npy"))) >= 2)
    proc.kill(), proc.wait()
    kept = {p: p.stat().st_mtime_ns for p in upstream.rglob("*.npy")}
    assert 2 <= len(kept) < 15 and not list(upstream.rglob("complete.json"))
    assert not (tmp_path / "p" / "config.yaml").exists()
    again = run_cli("train", "new", tmp_path / "p", "--model", "code-prior", "--upstream",
                    upstream, "--config", tiny_config("code-prior"), "--epochs", "1")
    assert again.returncode == 0, again.stderr
    assert f"encoding {15 - len(kept)} corpus files" in again.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # not encoded twice
    assert len(list(upstream.rglob("*.npy"))) == 15 and not list(upstream.rglob(".*.tmp"))

    # kill -9 while the prior trains, then continue: every epoch once
    proc = subprocess.Popen([sys.executable, "-m", "musicrgan", "train", "continue",
                             tmp_path / "p", "--epochs", "500"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: len(read_history(tmp_path / "p")) >= 3)
    proc.kill(), proc.wait()
    done = len(read_history(tmp_path / "p"))
    assert run_cli("train", "continue", tmp_path / "p", "--epochs", "1").returncode == 0
    assert [int(r["epoch"]) for r in read_history(tmp_path / "p")] == list(range(1, done + 2))


def test_evaluate_on_an_autoencoder_reports_its_reconstruction(vqvae, capsys):
    status, out, err = cli(capsys, "evaluate", vqvae, "--n", "2", "--seconds", "2",
                           "--quiet")
    assert status == 0, err
    assert "reconstruction of the test split" in out
    result = json.loads((vqvae / "eval.json").read_text())
    assert result["family"] == "vqvae" and "frechet" not in result
    r = result["reconstruction"]
    assert set(r) == {"mr_stft", "mel_distance", "si_sdr", "visqol", "frechet", "tempo_strength",
                      "tempo_strength_of_clips", "onset_rate", "onset_rate_of_clips"}
    assert 1 <= r["visqol"] <= 5 and r["frechet"] > 0


def test_the_reconstructions_frechet_distance_is_zero_for_a_perfect_autoencoder(vqvae, techno):
    run = Run(vqvae)
    clips = corpus_clips(techno, "test", 3.9, 4)   # long enough for a tempo (2 s of lags)
    tiny = evaluate.reconstruction(run, clips)["frechet"]
    # an autoencoder at the metric rate that gives back what it gets
    run.family.rate, run.family.reconstruct = METRIC_RATE, lambda model, batch: batch
    perfect = evaluate.reconstruction(run, clips)
    assert perfect["frechet"] < 1e-3 and tiny > 10.0, (perfect, tiny)  # one tiny epoch is far off
    # the pulse it keeps is the clips' own, and the loops have one
    assert perfect["tempo_strength"] == perfect["tempo_strength_of_clips"] > 0.2
    assert perfect["onset_rate"] == perfect["onset_rate_of_clips"] > 1.0


def test_vqvae_keeps_the_epoch_whose_reconstructions_are_nearest_the_test_clips(vqvae, techno,
                                                                                tmp_path):
    """best.keras is chosen by val_frechet, the Fréchet distance of the test clips'
    reconstructions to the clips themselves (the loss is no guide to how they sound)."""
    from musicrgan.validation import ReconstructionFrechet
    copy = tmp_path / "vq"
    shutil.copytree(vqvae, copy, ignore=shutil.ignore_patterns("latents"))
    run = Run(copy)
    run.train(2, verbose=0)
    history = run.state["history"]
    distances = [row["val_frechet"] for row in history]
    assert len(distances) == 3 and all(d > 0 for d in distances), distances
    assert run.state["best"] == pytest.approx(min(distances))

    # measured again on best.keras: the same distance
    check = ReconstructionFrechet(run.family, str(techno))
    check.on_train_begin()
    check.set_model(run.model("best"))
    logs = {}
    check.on_epoch_end(0, logs)
    assert logs["val_frechet"] == pytest.approx(min(distances), rel=1e-3)
    # it is the distance of the reconstructions to the clips they were made of
    check.family.reconstruct = lambda model, batch: batch
    check.on_epoch_end(0, logs)
    assert logs["val_frechet"] < 1e-3
    check.family.reconstruct = lambda model, batch: 0.5 * batch
    check.on_epoch_end(0, logs)
    from musicrgan.audio import resample
    from musicrgan.metrics import clips_frechet_distance
    at_metric_rate = [resample(c, run.family.rate, METRIC_RATE) for c in check.test_clips]
    assert run.family.rate != METRIC_RATE   # measured at the metric's rate, as evaluate does
    assert logs["val_frechet"] == pytest.approx(clips_frechet_distance(
        [0.5 * c for c in at_metric_rate], at_metric_rate), rel=1e-3) and logs["val_frechet"] > 1


def test_reconstruct_writes_each_file_beside_its_reconstruction(vqvae, tmp_path, capsys):
    from test_evaluate import assert_page_files_exist
    (tmp_path / "other").mkdir()
    files = [write_wav(tmp_path / "long.wav", chord(2.5, 8000), 8000),
             write_wav(tmp_path / "short.wav", chord(0.3, 8000), 8000),
             write_wav(tmp_path / "other" / "short.wav", chord(0.5, 8000), 8000)]
    out = tmp_path / "rec"
    status, printed, err = cli(capsys, "reconstruct", vqvae, *files, "--out", out)
    assert status == 0, err
    result = json.loads((out / "reconstruct.json").read_text())["files"]
    # a second file of the same name gets its own outputs, not the first one's
    assert set(result) == {"long.wav", "short.wav", "short-2.wav"}
    assert sf.info(out / "short-2_original.wav").frames == int(0.5 * 8000)
    assert 1 <= result["long.wav"]["visqol"] <= 5 and result["short.wav"]["visqol"] is None
    assert all(np.isfinite(r["mr_stft"]) for r in result.values())
    assert "long.wav: visqol" in printed
    for stem, seconds in (("long", 2.5), ("short", 0.3)):
        original, rate = sf.read(out / f"{stem}_original.wav")
        rebuilt, _ = sf.read(out / f"{stem}_reconstruction.wav")
        assert rate == 8000 and original.size == rebuilt.size == int(seconds * 8000)
    assert_page_files_exist(out / "index.html", at_least=8)
    assert_refused(cli(capsys, "reconstruct", vqvae, tmp_path / "none.wav", "--out", out),
                   "none.wav")


@pytest.mark.slow  # 25 s; the Transformer prior is the default and in the fast suite
def test_an_lstm_prior_trains_and_generates_by_config(vqvae, tmp_path, capsys):
    status, _, err = prior(capsys, tmp_path / "p", vqvae, "--set", "architecture=lstm",
                           "--set", "clock=false")
    assert status == 0, err
    songs = []
    for seed, extra in (("1", []), ("2", []), ("1", ["--top-k", "1"]), ("2", ["--top-k", "1"])):
        status, printed, err = cli(capsys, "generate", tmp_path / "p", "--n", "1", "--seconds",
                                   "0.5", "--seed", seed, "--out", tmp_path / f"o{len(songs)}",
                                   "--quiet", *extra)
        assert status == 0, err
        songs.append(sf.read(printed.strip())[0])
    assert all(s.size == 4000 and np.isfinite(s).all() for s in songs)
    assert not np.array_equal(songs[0], songs[1])  # seeds differ
    np.testing.assert_array_equal(songs[2], songs[3])  # greedy: the seed does not matter



@pytest.mark.slow  # 15 s: two caches and long decodes
def test_long_songs_are_decoded_and_encoded_in_pieces_without_seams(vqvae, techno, tmp_path,
                                                                     monkeypatch):
    """Memory flat in a song's length, and no seam where the pieces meet: decoding (as
    code-prior's songs are) and the latent cache's encoding, piece by piece with margins,
    give what the whole gives. And a second corpus on the same checkpoint, with the same
    file names, gets a cache of its own."""
    from musicrgan import latents
    from musicrgan.corpus.synth import synth_corpus
    run = Run(vqvae)
    family, model = run.family, run.model("best")
    codes = np.random.default_rng(0).integers(0, 16, (2, 300)).astype(np.int32)
    whole = family.decode(model, codes)
    np.testing.assert_allclose(family.decode_in_pieces(model, codes, steps=64), whole,
                               atol=1e-5)
    # the pieces cut without margins: their ends hear silence, and each join is a seam
    cut = np.concatenate([family.decode(model, codes[:, i:i + 64]) for i in range(0, 300, 64)],
                         axis=1)
    assert np.abs(cut - whole).max() > 1e-3

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, loops=2, seconds=4, rate=8000, seed=1, test_fraction=0.5)
    monkeypatch.setattr(latents, "CHUNK_SECONDS", 0.15)  # 1200 samples: 75 codes a piece
    fingerprint = latents.fingerprint(vqvae / "best.keras")
    first = latents.build_cache(run, str(techno), fingerprint)
    cache = latents.build_cache(run, str(corpus), fingerprint)
    name = sorted(os.listdir(corpus / "train"))[0]
    assert cache != first and (first / "train" / f"{name}.npy").is_file()  # the same name
    cached = np.load(cache / "train" / f"{name}.npy")
    audio, _ = sf.read(corpus / "train" / name, dtype="float32")
    expected = family.encode(model, audio[None])[0]
    assert cached.shape == expected.shape == (-(-audio.size // 16),)
    assert np.mean(cached == expected) > 0.999  # (a tie between two codes may round apart)

    # shifted views added to a cache: only the missing ones encoded, each the encoding of
    # the file from its offset on, in pieces as the rest
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    assert latents.build_cache(run, str(corpus), fingerprint, views=2) == cache
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    added = sorted(set(cache.rglob("*.npy")) - set(before))
    assert [p.name for p in added] == [f"{name}@8.npy"]   # hop 16: offsets 0 and 8
    expected = family.encode(model, audio[None, 8:])[0]
    shifted = np.load(added[0])
    assert shifted.shape == expected.shape and np.mean(shifted == expected) > 0.999
    assert np.mean(shifted == cached[:shifted.size]) < 0.9   # another sequence of codes
    assert json.loads((cache / "complete.json").read_text())["offsets"] == [0, 8]
    assert latents.build_cache(run, str(corpus), fingerprint, views=1) == cache
    assert json.loads((cache / "complete.json").read_text())["offsets"] == [0, 8]

    # a corpus file rendered again at another length (synth's render version 2): its
    # latents, every view, encoded again; the other file's kept
    other = cache / "test" / f"{sorted(os.listdir(corpus / 'test'))[0]}.npy"
    kept = other.stat().st_mtime_ns
    sf.write(corpus / "train" / name, audio[:audio.size // 2], 8000)
    assert latents.build_cache(run, str(corpus), fingerprint) == cache
    assert np.load(cache / "train" / f"{name}.npy").shape == (-(-(audio.size // 2) // 16),)
    assert np.load(cache / "train" / f"{name}@8.npy").shape == (-(-(audio.size // 2 - 8) // 16),)
    assert other.stat().st_mtime_ns == kept


def test_the_inverse_stft_head_gives_back_the_signal_whose_spectra_it_is_given():
    """istft_decoder's last layer: log magnitudes and phases of a signal's short-time
    spectra (frame t centred on sample t * hop) give the samples back inside the first and
    last frame, as many as the frames ask for."""
    from keras import ops
    from musicrgan.modules.conv import InverseSTFT
    hop, fft = 64, 256
    audio = 0.3 * np.random.default_rng(0).standard_normal((2, 100 * hop)).astype("float32")
    real, imag = (np.asarray(part)[:, :100] for part in ops.stft(audio, fft, hop, fft))
    spectra = np.concatenate([np.log(np.hypot(real, imag) + 1e-12), np.arctan2(imag, real)], -1)
    again = np.asarray(InverseSTFT(fft, hop)(spectra.astype("float32")))
    assert again.shape == audio.shape
    inner = slice(fft, -fft)
    assert np.abs(again[:, inner] - audio[:, inner]).max() < 1e-4


@pytest.mark.slow  # 25 s: the contract test trains, reloads and exports the default too
@pytest.mark.parametrize("decoder,onset_weight,moments_weight",
                         [("istft", 0.0, 3.0), ("conv", 2.0, 0.0)])
def test_a_vqvae_with_either_decoder_learns_reloads_and_exports(decoder, onset_weight,
                                                                moments_weight, techno,
                                                                tmp_path, capsys):
    """decoder: istft (the default, at the code rate) or conv (up to the sample rate), with
    the frame-moments or the onset-flux loss: each learns (the reconstruction falls), reloads
    (with its loss weights, which its loss uses), encodes, decodes and exports to ONNX, its
    audio through the drift filter."""
    folder = tmp_path / f"vq-{decoder}"
    status, _, err = cli(capsys, "train", "new", folder, "--model", "vqvae", "--data", techno,
                         "--config", tiny_config("vqvae"), "--epochs", "2",
                         "--set", "steps_per_epoch=8", "--set", "seed=1",
                         "--set", f"decoder={decoder}", "--set", f"onset_weight={onset_weight}",
                         "--set", f"moments_weight={moments_weight}")
    assert status == 0, err
    history = read_history(folder)
    assert float(history[1]["reconstruction"]) < float(history[0]["reconstruction"])
    run = Run(folder)
    model = run.model()
    assert (model.distance.onset, model.distance.moments) == (onset_weight, moments_weight)
    clips = np.stack([chord(1.0, 16000, amp=a)[:4096] for a in (0.05, 0.3)])
    with_terms = float(model._step_losses(clips, False)[0])
    model.distance.onset = model.distance.moments = 0.0
    assert with_terms > float(model._step_losses(clips, False)[0])
    model.distance.onset, model.distance.moments = onset_weight, moments_weight
    layers = [layer.name for layer in model.decoder.layers]
    assert layers[-1] == "remove_drift"
    assert ("inverse_stft" in layers) == (decoder == "istft")
    audio = chord(0.5, 16000)[None, :4096]
    codes = run.family.encode(model, audio)
    assert codes.shape == (1, 4096 // 16)  # tiny config: strides 4, 4
    assert run.family.reconstruct(model, audio).shape == audio.shape
    status, err, exported = onnx_decoder_output(capsys, folder, tmp_path / "onnx", codes)
    assert status == 0, err
    np.testing.assert_allclose(exported, run.family.decode(model, codes), rtol=1e-3, atol=1e-4)

    assert_refused(cli(capsys, "train", "new", tmp_path / "bad", "--model", "vqvae", "--data",
                       techno, "--set", "decoder=istft", "--set", "istft_fft=100"),
                   "istft_fft must be a multiple of the downsampling (256)")
    assert_refused(cli(capsys, "train", "new", tmp_path / "bad", "--model", "vqvae", "--data",
                       techno, "--set", "onset_weight=-1"), "onset_weight must not be negative")


@pytest.mark.slow  # about 5 minutes: the default chain, trained about as long as the demo
def test_the_default_chain_keeps_the_pulse_at_the_tempo_asked_for(tmp_path):
    """The default vqvae (6 epochs) and the default code-prior over it (10 epochs): what
    `make demo`'s 5 minutes gave on one 2-core machine (epoch counts, so the check does not
    depend on the machine), on the built-in corpus. 8-second songs asked for at 124 and at
    146 BPM (inside the corpus's 120-150) have their onsets on that tempo's 16th-note grid
    (not on one 7 % off), a pulse (tempo strength: the corpus's 0.52; 0.11 when the prior had
    no beat clock), and a Fréchet distance to the test split far below noise's."""
    from musicrgan import metrics
    from musicrgan.corpus.synth import synth_corpus
    from musicrgan.models.base import GenerationRequest
    corpus = tmp_path / "corpus"
    synth_corpus(corpus, loops=24, seconds=8, rate=16000, seed=0)
    vq = Run.create(tmp_path / "vq", "vqvae", corpus, {"seed": 0})
    vq.train(6, verbose=0)
    prior = Run.create(tmp_path / "prior", "code-prior", None, {"seed": 0}, upstream=vq.path)
    prior.train(10, verbose=0)
    family, model = prior.family, prior.model("best")
    songs = []
    for bpm in (124, 146):
        request = family.checked(GenerationRequest(n=6, seconds=8, seed=3,
                                                   controls={"bpm": bpm}))
        clips = family.generate(model, request)
        songs += list(clips)
        # measured on the demo's run (2026-12-06): 0.90 on the grid, 0.10 off it, tempo
        # strength 0.55
        assert_keeps_the_pulse(clips, bpm, min_strength=0.3)
    reference = corpus_clips(corpus, "test", 8, 16)
    noise = [np.random.default_rng(i).normal(0, 0.1, 8 * 16000) for i in range(len(reference))]
    frechet = metrics.clips_frechet_distance(songs, reference)
    # 183 against noise's 1707 on the first run of this test (the demo's corpus of 48 loops,
    # 5 minutes: 63)
    assert frechet < 0.2 * metrics.clips_frechet_distance(noise, reference), frechet
