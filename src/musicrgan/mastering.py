"""Level matching for generated audio, as a mastering engineer would set a track's level:
gain to a target integrated loudness (ITU-R BS.1770, the measure `evaluate` reports), and a
peak limiter so the gain never clips. A model's output level is a by-product of training
(the GAN's clips came out 3 to 11 LU quieter than their corpus); matching it is a choice at
generation (`generate --match-loudness`), never applied silently, and `evaluate` reports
its clips with it off and on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metrics
from .audio import atomic_write_text, limit_peaks

CEILING = 10 ** (-1.0 / 20)     # peaks at most -1 dBFS
CORPUS_LOUDNESS = "corpus_loudness.json"
# how the cached corpus loudness was measured: a value from clips at the start of each file
# (before "spread", intros: 7 LU too quiet on the orchestral set) is measured again
CLIPS = "spread"


def match_loudness(x: np.ndarray, rate: int, target_lufs: float) -> np.ndarray:
    """`x` at `target_lufs` integrated loudness (within 0.1 LU where the limiter allows), peaks
    at most -1 dBFS. Silence stays silence."""
    x = np.asarray(x, np.float32)
    current = metrics.loudness(x, rate)
    if current <= metrics.SILENCE_LUFS:
        return x

    def at(gain_db):
        return limit_peaks(x * np.float32(10 ** (gain_db / 20)), rate, CEILING)

    # the limiter takes back part of any gain, so the gain that reaches the target is found
    # by bisection (loudness grows with gain): from the plain gain up to 24 dB above it
    low = high = target_lufs - current
    if metrics.loudness(at(low), rate) < target_lufs - 0.1:
        low, high = low, low + 24.0
        for _ in range(14):
            middle = (low + high) / 2
            if metrics.loudness(at(middle), rate) < target_lufs:
                low = middle
            else:
                high = middle
    return at(high)


def corpus_loudness(run: Path, data: str | Path, seconds: float = 4.0, clips: int = 32) -> float:
    """The median integrated loudness of the run's training audio (clips of `seconds` spread
    over the files: data.corpus_clips), measured once and kept in RUN/corpus_loudness.json."""
    from .data import corpus_clips
    cache = Path(run) / CORPUS_LOUDNESS
    try:
        cached = json.loads(cache.read_text())
        if cached.get("data") == str(data) and cached.get("clips") == CLIPS:
            return float(cached["lufs"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    from .data import CorpusError
    try:
        audio = corpus_clips(data, "train", seconds, clips)
    except CorpusError:  # files shorter than `seconds`
        audio = corpus_clips(data, "train", 0.5, clips)
    values = [metrics.loudness(c) for c in audio]
    lufs = float(np.median(values))
    try:
        atomic_write_text(cache, json.dumps({"data": str(data), "clips": CLIPS,
                                             "lufs": round(lufs, 3)}))
    except OSError:
        pass  # a read-only run folder measures again next time
    return lufs
