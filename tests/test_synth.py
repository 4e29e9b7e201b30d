import hashlib

import numpy as np
import soundfile as sf
from scipy import signal

from conftest import run_cli
from musicrgan.corpus.manifest import read_jsonl
from musicrgan.corpus.synth import render_loop, synth_corpus


def digest(folder):
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.wav"))}


def test_same_seed_same_corpus_other_seed_other_corpus(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        synth_corpus(tmp_path / name, loops=3, seconds=2, rate=8000, seed=seed)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert read_jsonl(tmp_path / "a" / "manifest.jsonl") == read_jsonl(tmp_path / "b" / "manifest.jsonl")


def test_labels_and_layout(techno):
    entries = read_jsonl(techno / "manifest.jsonl")
    assert len(entries) == 6
    assert {e["split"] for e in entries} == {"train", "test"}
    for e in entries:
        info = sf.info(str(techno / e["path"]))
        assert info.samplerate == 8000 and info.channels == 1
        assert 120 <= e["bpm"] <= 150
        # loops are whole bars: length = bars * 4 beats, the fewest that last the 3 s asked
        # for (so a 3-second clip can be cut from every one)
        assert abs(info.frames / 8000 - e["bars"] * 4 * 60 / e["bpm"]) < 1e-3
        assert info.frames >= 3 * 8000
        assert (e["bars"] - 1) * 4 * 60 / e["bpm"] < 3
        assert e["key"] and e["scale"] and len(e["bass_pattern"]) == 16
        assert len(e["kick_pattern"]) == 16 and e["kick_pattern"][0::4] == "xxxx"


def test_a_loop_has_a_kick_on_every_beat_and_a_bass_in_key():
    loop = render_loop(16000, 4.0, seed=11, index=0)
    x, rate, bpm = loop.audio, 16000, loop.labels["bpm"]
    assert 0.5 < np.max(np.abs(x)) <= 0.9
    # low band envelope: the kick's energy peaks once per beat
    sos = signal.butter(4, 120 / (rate / 2), "low", output="sos")
    env = np.abs(signal.sosfilt(sos, x))
    hop = rate // 100
    env = env[: len(env) // hop * hop].reshape(-1, hop).max(axis=1)
    onset = np.maximum(np.diff(env), 0)
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), "full")[len(onset) - 1:]
    beat_lag = 60 / bpm * 100
    lags = np.arange(20, 200)
    best = lags[np.argmax(ac[20:200])]
    # the strongest periodicity is the beat or a multiple of it
    assert min(abs(best - k * beat_lag) for k in (1, 2, 4)) < 2.5
    # not a test tone: energy spread over bass, mids and highs
    f, p = signal.welch(x, rate, nperseg=2048)
    bands = [p[(f >= lo) & (f < hi)].sum() for lo, hi in ((30, 200), (200, 2000), (2000, 8000))]
    assert all(b > 1e-4 * sum(bands) for b in bands)


def test_synth_cli_and_info(tmp_path):
    proc = run_cli("synth", tmp_path / "c", "--loops", "2", "--seconds", "2", "--rate", "8000",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "2 loops" in proc.stdout
    info = run_cli("info", tmp_path / "c")
    assert info.returncode == 0
    assert "train:    1 files" in info.stdout and "bpm" in info.stdout


def test_loops_of_an_earlier_render_version_are_rendered_again(tmp_path):
    from musicrgan.corpus.manifest import rewrite_jsonl
    synth_corpus(tmp_path, loops=2, seconds=2, rate=8000, seed=5)
    entries = read_jsonl(tmp_path / "manifest.jsonl")
    first = tmp_path / entries[0]["path"]
    kept = tmp_path / entries[1]["path"]
    # version 1 wrote no render_version; its loops could be shorter than asked
    old = [{k: v for k, v in e.items() if k != "render_version"} if i == 0 else e
           for i, e in enumerate(entries)]
    rewrite_jsonl(tmp_path / "manifest.jsonl", old)
    first.write_bytes(b"stale")
    kept_stamp = kept.stat().st_mtime_ns
    synth_corpus(tmp_path, loops=2, seconds=2, rate=8000, seed=5)
    assert sf.info(str(first)).frames >= 2 * 8000
    assert kept.stat().st_mtime_ns == kept_stamp
    assert read_jsonl(tmp_path / "manifest.jsonl") == entries
