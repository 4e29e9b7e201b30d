"""Beat grids: where the beats of a track fall, so a model can be told (and asked to keep)
the pulse of what it hears.

A grid is a constant tempo and the time of one downbeat, found from the spectral flux: the
autocorrelation tempo (metrics.tempo) is refined by the grid that collects the most
low-band flux, searched over tempo and phase. A track gets one grid per 30 seconds (a
longer one drifts from a constant tempo, and songs change tempo), which suits loops and
most dance music. Grids of a corpus are cached in CORPUS/beats.json, keyed by file, length
and modification time, so they are found once.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from . import audio, metrics
from .audio import atomic_write_text

BEATS_PER_BAR = 4
LOW_BAND_HZ = 250.0
TEMPO_RATIOS = (1.0, 2 / 3, 3 / 4, 4 / 5, 5 / 4, 4 / 3, 3 / 2)
MIN_BPM, MAX_BPM = 60.0, 200.0
SEGMENT_SECONDS = 30.0


@dataclass(frozen=True)
class BeatGrid:
    bpm: float
    downbeat: float     # seconds from the file's start: a bar's first beat
    strength: float     # tempo strength (0 for no pulse)
    start: float = 0.0  # seconds from the file's start where this grid begins to hold

    def beat_at(self, seconds):
        """Beat position (beats since a downbeat, fractional) at a time in the file."""
        return (np.asarray(seconds) - self.downbeat) * self.bpm / 60.0


def _grid_score(env: np.ndarray, period: float, step: float) -> tuple[float, float]:
    """(best mean flux on a grid of this period, its phase in frames, `step` apart)."""
    phases = np.arange(0.0, period, step)
    beats = np.arange(0.0, env.size / period)
    grid = phases[:, None] + beats[None, :] * period          # (phases, beats) in frames
    score = np.interp(grid, np.arange(env.size), env, right=0.0).sum(axis=1) / beats.size
    i = int(np.argmax(score))
    return float(score[i]), float(phases[i])


def find_grid(x: np.ndarray, rate: int) -> BeatGrid:
    """The constant-tempo grid that best fits a mono track."""
    if rate != metrics.METRIC_RATE:
        # the flux's 1024-point frames are tuned to 16 kHz (64 ms; at 8 kHz they blur hits)
        x, rate = audio.resample(np.asarray(x, np.float32), rate, metrics.METRIC_RATE), metrics.METRIC_RATE
    hop = metrics.HOP // 2
    bpm, strength = metrics.tempo(x, rate, hop)
    # kicks and bass notes below LOW_BAND_HZ mark the beats of most dance music, where hats
    # and claps often fall between them
    env = metrics.onset_envelope(x, rate, hop, below_hz=LOW_BAND_HZ)
    if strength <= 0 or env.size < 4 or env.max() <= 0:
        return BeatGrid(120.0, 0.0, 0.0)
    frame_rate = rate / hop

    def best(candidates, phase_step):
        scores = []
        for candidate in candidates:
            if MIN_BPM <= candidate <= MAX_BPM:
                score, phase = _grid_score(env, 60.0 * frame_rate / candidate, phase_step)
                # the same tempo prior as metrics.tempo: a grid at half or 2/3 of the tempo
                # can collect as much flux per beat when every other beat is a kick
                prior = np.exp(-0.5 * (np.log2(candidate / 120.0)
                                       / metrics.TEMPO_PRIOR_OCTAVES) ** 2)
                scores.append((score * prior, phase, candidate))
        return max(scores) if scores else None

    # the autocorrelation's tempo, or a simple ratio of it (the autocorrelation of a busy
    # pattern can peak at 2/3 or 4/5 of the beat), each searched ±4 % in 0.5 % steps and
    # half frames; then ±0.5 % around the best in 0.1 % steps and quarter frames
    found = best([bpm * ratio * fine for ratio in TEMPO_RATIOS
                  for fine in np.linspace(0.96, 1.04, 17)], 0.5)
    if found is None:  # no tempo near the estimate lies in MIN_BPM..MAX_BPM: no usable pulse
        return BeatGrid(120.0, 0.0, 0.0)
    _, phase, bpm = best(found[2] * np.linspace(0.995, 1.005, 11), 0.25)
    period = 60.0 * frame_rate / bpm
    # the downbeat is the beat of the bar that collects the most flux
    flux = np.interp(phase + np.arange(0.0, env.size / period) * period, np.arange(env.size),
                     env, right=0.0)
    per_slot = [flux[k::BEATS_PER_BAR].mean() if flux[k::BEATS_PER_BAR].size else 0.0
                for k in range(BEATS_PER_BAR)]
    first = phase + int(np.argmax(per_slot)) * period
    first -= BEATS_PER_BAR * period * np.floor(first / (BEATS_PER_BAR * period))
    # (flux peaks lag the hits by half a hop, as in metrics.onset_times)
    return BeatGrid(float(bpm), float((first - 0.5) * hop / rate), float(strength))


def find_grids(x: np.ndarray, rate: int) -> list[BeatGrid]:
    """One grid per SEGMENT_SECONDS of a track (a shorter last part joins the one before
    if under half a segment)."""
    segment = int(SEGMENT_SECONDS * rate)
    starts = list(range(0, max(1, x.size), segment))
    if len(starts) > 1 and x.size - starts[-1] < segment // 2:
        starts.pop()
    grids = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else x.size
        grid = find_grid(x[start:end], rate)
        offset = start / rate
        grids.append(BeatGrid(grid.bpm, grid.downbeat + offset, grid.strength, offset))
    return grids


def grid_at(grids: list[BeatGrid], seconds: float) -> BeatGrid:
    """The grid that holds at a time in the file."""
    return [g for g in grids if g.start <= seconds][-1] if seconds >= 0 else grids[0]


def corpus_grids(corpus: str | Path, paths: list[str]) -> list[list[BeatGrid]]:
    """Grids of these wav files of a corpus (a list per file), from CORPUS/beats.json or
    found and cached."""
    corpus = Path(corpus)
    cache_path = corpus / "beats.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    grids, changed = [], False
    # a bar for a corpus seen the first time (about 300x real time on 2 cores)
    for path in tqdm(paths, desc="beat grids", unit="file", file=sys.stderr, leave=False,
                     disable=len(paths) < 50 or len(cache) >= len(paths)):
        key = str(Path(path).resolve().relative_to(corpus.resolve()))
        # a file converted again (same name, new content) has a new length or time
        stamp = {"frames": sf.info(path).frames, "mtime_ns": os.stat(path).st_mtime_ns}
        entry = cache.get(key)
        if not entry or "grids" not in entry or any(entry.get(k) != v for k, v in stamp.items()):
            samples, rate = sf.read(path, dtype="float32", always_2d=True)
            entry = {"grids": [asdict(g) for g in find_grids(samples.mean(axis=1), rate)],
                     **stamp}
            cache[key], changed = entry, True
        grids.append([BeatGrid(**g) for g in entry["grids"]])
    if changed:
        try:
            atomic_write_text(cache_path, json.dumps(cache, indent=1, sort_keys=True))
        except OSError:
            pass    # a read-only corpus: found again next time, nothing lost

    return grids
