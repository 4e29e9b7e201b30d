"""Level matching (`generate --match-loudness`): the gain reaches the target loudness, the
limiter keeps peaks under the ceiling without touching what is under it, and the corpus's
loudness is measured from clips spread over its files, once per run."""

import json

import numpy as np
import soundfile as sf

from musicrgan import mastering, metrics
from musicrgan.audio import LIMITER_SECONDS, limit_peaks

RATE = 16000


def hits(seconds=4.0, level=0.05):
    """A quiet 110 Hz tone with a sharp click every half second: peaks well above its
    loudness, as a drum loop's."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = level * np.sin(2 * np.pi * 110 * t)
    x[::RATE // 2] += 4 * level
    return x.astype(np.float32)


def test_match_loudness_reaches_the_target_with_peaks_under_the_ceiling():
    x = hits()
    assert metrics.loudness(x, RATE) < -25
    y = mastering.match_loudness(x, RATE, -10.0)
    assert abs(metrics.loudness(y, RATE) - -10.0) < 0.2
    assert np.abs(y).max() <= mastering.CEILING + 1e-6
    # the limiter took the clicks down; plain gain to -10 LUFS would have clipped them
    plain = x * 10 ** ((-10.0 - metrics.loudness(x, RATE)) / 20)
    assert np.abs(plain).max() > 1.0
    # silence stays silence
    assert not mastering.match_loudness(np.zeros(RATE, np.float32), RATE, -10.0).any()


def test_the_limiter_leaves_audio_under_the_ceiling_alone():
    x = hits(level=0.1)
    assert np.abs(x).max() < mastering.CEILING
    np.testing.assert_array_equal(limit_peaks(x, RATE, mastering.CEILING), x)
    loud = 3 * x
    limited = limit_peaks(loud, RATE, mastering.CEILING)
    assert np.abs(limited).max() <= mastering.CEILING + 1e-6
    # away from the clicks (more than the limiter's reach) the audio is untouched
    reach = int(2 * LIMITER_SECONDS * RATE)
    np.testing.assert_allclose(limited[reach:RATE // 2 - reach],
                               loud[reach:RATE // 2 - reach], rtol=1e-6)


def test_the_corpus_loudness_comes_from_the_middle_of_songs_and_is_kept(tmp_path):
    """Songs with a quiet intro: the corpus loudness is the songs' body's, not the intros';
    a value cached before clips were spread (no "clips" key) is measured again."""
    corpus = tmp_path / "corpus"
    (corpus / "train").mkdir(parents=True)
    for i in range(3):
        song = hits(seconds=24.0, level=0.2)
        song[:8 * RATE] *= 0.01  # an 8 s intro 40 dB down
        sf.write(corpus / "train" / f"song{i}.wav", song, RATE)
    body = metrics.loudness(hits(seconds=4.0, level=0.2), RATE)
    run = tmp_path / "run"
    run.mkdir()
    (run / mastering.CORPUS_LOUDNESS).write_text(
        json.dumps({"data": str(corpus), "lufs": -45.0}))  # measured from the intros
    # one 4 s clip a song: the middle one, not the intro
    lufs = mastering.corpus_loudness(run, corpus, seconds=4.0, clips=3)
    assert abs(lufs - body) < 1.0
    cached = json.loads((run / mastering.CORPUS_LOUDNESS).read_text())
    assert cached["clips"] == mastering.CLIPS and abs(cached["lufs"] - lufs) < 1e-3
    # kept: the value in the file is what the next call returns
    (run / mastering.CORPUS_LOUDNESS).write_text(json.dumps({**cached, "lufs": -12.5}))
    assert mastering.corpus_loudness(run, corpus, seconds=4.0, clips=3) == -12.5
