"""Beat grids: found on tracks whose beats are known, cached per corpus, served with windows."""

import json

import numpy as np
import pytest
import soundfile as sf

from musicrgan import beats
from musicrgan.corpus.synth import synth_corpus
from musicrgan.data import WindowSource, window_dataset

RATE = 16000


def kick_track(bpm, first, seconds=8.0, rate=RATE):
    """Sine-sweep kicks on every beat from `first` seconds, the first of each bar louder."""
    x = np.zeros(int(seconds * rate))
    t = np.arange(int(0.15 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
    for k, start in enumerate(np.arange(first, seconds, 60.0 / bpm)):
        i = int(start * rate)
        n = min(kick.size, x.size - i)
        x[i:i + n] += (0.8 if k % 4 == 0 else 0.4) * kick[:n]
    return x.astype(np.float32)


def beat_offset(seconds, bpm, period_beats=1):
    """Distance (s) from `seconds` to the nearest multiple of `period_beats` beats."""
    period = period_beats * 60.0 / bpm
    r = seconds % period
    return min(r, period - r)


@pytest.mark.parametrize("bpm,first", [(124, 0.0), (128, 0.3), (141, 1.1)])
def test_grid_of_a_kick_track_finds_tempo_and_downbeat(bpm, first):
    grid = beats.find_grid(kick_track(bpm, first), RATE)
    assert abs(grid.bpm - bpm) < 0.3
    assert beat_offset(grid.downbeat - first, bpm, period_beats=4) < 0.015
    assert grid.strength > 0.3


def test_grid_of_noise_has_no_strength():
    grid = beats.find_grid(0.1 * np.random.default_rng(0).standard_normal(8 * RATE), RATE)
    assert grid.strength < 0.1   # a grid is found, and its strength says it means nothing


def test_grids_of_the_built_in_corpus_match_its_labels(tmp_path):
    """Synthesized loops (kick patterns, claps between kicks, bass on 16ths) at 16 kHz: the
    tempo within 0.5 %, a downbeat on a beat."""
    synth_corpus(tmp_path, loops=8, seconds=8, rate=RATE, seed=11, test_fraction=0.0)
    labels = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    paths = [str(tmp_path / e["path"]) for e in labels]
    for entry, (grid,) in zip(labels, beats.corpus_grids(tmp_path, paths)):
        assert abs(grid.bpm / entry["bpm"] - 1) < 0.005, (entry["path"], entry["bpm"], grid)
        assert beat_offset(grid.downbeat, entry["bpm"]) < 0.015, (entry["path"], grid)


def test_corpus_grids_are_cached_and_refound_when_a_file_changes(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    a, b = tmp_path / "train" / "a.wav", tmp_path / "train" / "b.wav"
    sf.write(a, kick_track(128, 0.0, seconds=4), RATE)
    sf.write(b, kick_track(140, 0.0, seconds=4), RATE)
    first = beats.corpus_grids(tmp_path, [str(a), str(b)])
    assert [[round(g.bpm) for g in grids] for grids in first] == [[128], [140]]
    assert set(json.loads((tmp_path / "beats.json").read_text())) == {"train/a.wav", "train/b.wav"}

    found = []
    real_find = beats.find_grid
    monkeypatch.setattr(beats, "find_grid", lambda x, rate: found.append(1) or real_find(x, rate))
    assert beats.corpus_grids(tmp_path, [str(a), str(b)]) == first
    assert not found
    sf.write(b, kick_track(120, 0.0, seconds=5), RATE)   # replaced by another take
    again = beats.corpus_grids(tmp_path, [str(a), str(b)])
    assert len(found) == 1 and again[0] == first[0] and round(again[1][0].bpm) == 120


def test_windows_come_with_tempo_and_beat_position(tmp_path):
    (tmp_path / "test").mkdir()
    sf.write(tmp_path / "test" / "a.wav", kick_track(120, 0.25, seconds=6), RATE)
    window = RATE // 2
    (grid,) = WindowSource(tmp_path, "test", window, beats=True).grids[0]
    batches = list(window_dataset(tmp_path, "test", window, 4, training=False, beats=True))
    positions = np.concatenate([b[1].numpy() for b in batches])
    assert len(positions) == 12
    np.testing.assert_allclose(positions[:, 0], grid.bpm)
    # window k starts at k/2 s: the downbeat near 0.25 s is beat 0, so it starts at beat k - 0.5
    np.testing.assert_allclose(positions[:, 1], grid.beat_at(np.arange(12) * 0.5), rtol=1e-5)
    np.testing.assert_allclose(positions[:, 1], np.arange(12) - 0.5, atol=0.05)
    train_free = window_dataset(tmp_path, "test", window, 4, training=False)
    assert next(iter(train_free)).shape == (4, window)


def test_a_long_track_gets_a_grid_per_half_minute_and_windows_follow_them(tmp_path):
    """A song at 120 BPM for 30 s, then 128 BPM for 40 s: two grids (the last 10 s join
    the second), and each window gets the tempo and beat position of the part it is in."""
    x = np.concatenate([kick_track(120, 0.0, seconds=30), kick_track(128, 0.0, seconds=40)])
    grids = beats.find_grids(x, RATE)
    assert [g.start for g in grids] == [0.0, 30.0]
    assert abs(grids[0].bpm - 120) < 0.3 and abs(grids[1].bpm - 128) < 0.3
    assert beat_offset(grids[1].downbeat - 30.0, 128, period_beats=4) < 0.015
    assert beats.grid_at(grids, 29.9) == grids[0] and beats.grid_at(grids, 65.0) == grids[1]

    (tmp_path / "train").mkdir()
    sf.write(tmp_path / "train" / "song.wav", x, RATE)
    source = WindowSource(tmp_path, "train", RATE, beats=True)
    for seconds, bpm in ((10.0, 120), (30.0 + 40 * 60 / 128, 128)):   # both on a kick
        _, (found_bpm, position) = source._item(0, int(seconds * RATE))
        grid = beats.grid_at(grids, seconds)
        assert abs(found_bpm - bpm) < 0.3
        assert position == pytest.approx(grid.beat_at(seconds), abs=1e-3)
        # kicks on every beat: a window starting on one starts on a whole beat
        assert abs(position - round(position)) < 0.05


def test_a_tempo_estimate_outside_the_range_gives_no_grid_instead_of_a_crash(monkeypatch):
    """An orchestral track's tempo estimate can land where no simple ratio of it is a tempo
    we search (60-200 BPM); the grid then says 'no pulse', as for silence (training on the
    Wesnoth orchestral set crashed here with an empty max())."""
    import numpy as np
    from musicrgan import beats, metrics
    monkeypatch.setattr(metrics, "tempo", lambda x, rate, hop: (30.0, 0.4))
    clicks = np.zeros(16000 * 8, np.float32)
    clicks[::8000] = 1.0
    grid = beats.find_grid(clicks, 16000)
    assert grid.strength == 0.0 and grid.bpm == 120.0
