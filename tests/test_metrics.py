"""Metrics on signals whose answers are known."""

import numpy as np
import pytest
from scipy import signal

from musicrgan import metrics as M

RATE = M.METRIC_RATE


def click_track(bpm, seconds=8.0, rate=RATE, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate))
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * rate)
        n = min(400, x.size - i)
        x[i:i + n] += 0.5 * np.exp(-np.arange(n) / 60.0) * rng.standard_normal(n)
    return x


def noise(seconds, seed, scale=0.1):
    return scale * np.random.default_rng(seed).standard_normal(int(seconds * RATE))


def with_snr(x, snr_db, seed=1):
    n = np.random.default_rng(seed).standard_normal(x.size)
    return x + n * np.sqrt(np.mean(x ** 2) / np.mean(n ** 2) / 10 ** (snr_db / 10))


@pytest.mark.parametrize("bpm", [90, 120, 128, 140])
def test_tempo_and_onsets_of_a_click_track(bpm):
    x = click_track(bpm)
    found, strength = M.tempo(x)
    assert abs(found - bpm) < 1.0
    assert strength > 0.6
    clicks = len(np.arange(0, 8.0, 60.0 / bpm))
    assert len(M.onset_times(x)) == clicks
    assert np.allclose(M.onset_times(x), np.arange(0, 8.0, 60.0 / bpm), atol=0.02)


def test_noise_and_a_steady_tone_have_no_pulse():
    assert M.tempo(noise(8, 0))[1] < 0.1
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE)
    assert M.tempo(tone) == (0.0, 0.0)
    assert len(M.onset_times(tone)) == 1  # the tone starting, nothing after
    assert M.descriptors(np.zeros(2 * RATE)) == {
        "loudness": M.SILENCE_LUFS, "centroid": 0.0, "flatness": 0.0, "onset_rate": 0.0,
        "tempo": 0.0, "tempo_strength": 0.0}


def test_loudness_centroid_flatness_of_known_signals():
    t = np.arange(4 * RATE) / RATE
    tone = np.sin(2 * np.pi * 1000 * t)
    # BS.1770: a full-scale 1 kHz sine reads -3.01 LUFS; half the amplitude is 6 dB less
    assert M.loudness(tone) == pytest.approx(-3.01, abs=0.1)
    assert M.loudness(0.5 * tone) == pytest.approx(-3.01 - 6.02, abs=0.1)
    assert M.spectral_centroid(tone) == pytest.approx(1000, rel=0.01)
    assert M.spectral_flatness(tone) < 1e-3
    white = noise(4, 2)
    assert M.spectral_flatness(white) == pytest.approx(0.56, abs=0.03)  # exp(-euler_gamma)
    assert M.spectral_centroid(white) == pytest.approx(RATE / 4, rel=0.05)
    lowpassed = signal.sosfilt(signal.butter(6, 1000, fs=RATE, output="sos"), white)
    assert M.spectral_centroid(lowpassed) < 0.3 * M.spectral_centroid(white)


def test_frechet_distance_grows_with_spectral_shift():
    a = [noise(2, s) for s in range(4)]
    b = [noise(2, s) for s in range(4, 8)]
    assert M.clips_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same = M.clips_frechet_distance(a, b)
    distances = []
    for cutoff in (6000, 3000, 1000):
        sos = signal.butter(6, cutoff, fs=RATE, output="sos")
        distances.append(M.clips_frechet_distance(a, [signal.sosfilt(sos, x) for x in b]))
    assert same < 0.05 * distances[0]
    assert distances == sorted(distances)  # the further the shift, the larger the distance
    louder = M.clips_frechet_distance(a, [4 * x for x in b])
    assert louder > 10 * same


def test_compare_distributions():
    ref = np.arange(100.0)
    inside = M.compare_distributions([40, 50, 60], ref)
    assert inside["in_range"] == 1.0 and inside["corpus_mean"] == pytest.approx(49.5)
    outside = M.compare_distributions([200, 300], ref)
    assert outside["in_range"] == 0.0
    assert outside["w1"] > inside["w1"]


def test_reconstruction_metrics_known_answers():
    x = click_track(120, 3) + 0.1 * np.sin(2 * np.pi * 330 * np.arange(3 * RATE) / RATE)
    same = M.reconstruction_metrics(x, x, with_visqol=False)
    assert same["mr_stft"] == 0.0 and same["mel_distance"] == 0.0 and same["si_sdr"] > 100
    assert M.si_sdr(x, 0.3 * x) > 100  # scale-invariant
    for snr in (30, 10, 0):
        assert M.si_sdr(x, with_snr(x, snr)) == pytest.approx(snr, abs=0.3)
    worse = [M.reconstruction_metrics(x, with_snr(x, snr), with_visqol=False) for snr in (30, 10, 0)]
    for key in ("mr_stft", "mel_distance"):
        values = [w[key] for w in worse]
        assert values == sorted(values) and values[0] > 0


def test_visqol_prefers_the_clean_copy():
    x = click_track(120, 3) + 0.1 * np.sin(2 * np.pi * 330 * np.arange(3 * RATE) / RATE)
    clean = M.visqol(x, x)
    assert clean > 4.5
    assert M.visqol(x, with_snr(x, 0)) < clean - 1.0


def test_grid_alignment_of_onsets_on_and_off_the_grid():
    """Clicks on 16th notes at 128 BPM (a pattern that repeats every 5 steps, whose tempo an
    estimate would get wrong) sit on the 128 BPM grid, not on a grid 7 % off; clicks at
    random times sit on neither."""
    step = 60.0 / 128 / 4
    x = np.zeros(8 * RATE)
    rng = np.random.default_rng(0)
    for start in np.arange(0, 7.9, 5 * step):
        i = int(start * RATE)
        x[i:i + 400] += 0.5 * np.exp(-np.arange(400) / 60.0) * rng.standard_normal(400)
    assert M.grid_alignment(x, 128) > 0.9
    assert M.grid_alignment(x, 128 * 1.07) < 0.4
    scattered = np.zeros(8 * RATE)
    for start in np.sort(rng.uniform(0, 7.9, 30)):
        i = int(start * RATE)
        scattered[i:i + 400] += 0.5 * np.exp(-np.arange(400) / 60.0) * rng.standard_normal(400)
    assert M.grid_alignment(scattered, 128) < 0.4
    assert M.grid_alignment(np.zeros(RATE), 128) == 0.0
