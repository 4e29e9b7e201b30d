"""Audio metrics, the same for every model family (numpy and scipy only; no TensorFlow).

Generation metrics compare a set of generated clips with held-out corpus audio:
  - Fréchet distance between Gaussians fitted to log-mel frames (64 bands, 1024-point STFT,
    hop 256, at 16 kHz). The audio analogue of FID/FAD on a fixed, documented embedding:
    0 for identical distributions, growing with spectral and dynamic differences.
  - descriptors per clip: integrated loudness (ITU-R BS.1770 via pyloudnorm, LUFS), spectral
    centroid (Hz), spectral flatness (0 tonal .. 1 white noise), onset rate (per second) and
    tempo (BPM) with its strength (0 no pulse .. 1 a strict metronome).
Reconstruction metrics compare a clip with its reference sample by sample: multi-resolution
STFT distance, log-mel distance, SI-SDR (dB) and ViSQOL (MOS-LQO 1..5, audio mode).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, signal, stats

METRIC_RATE = 16000
N_FFT, HOP, N_MELS = 1024, 256, 64
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: anything quieter counts as silence
ONSET_DB = 3.0
TEMPO_PRIOR_OCTAVES = 0.5
DESCRIPTORS = ("loudness", "centroid", "flatness", "onset_rate", "tempo", "tempo_strength")


def stft_power(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Power spectrogram, frames x (n_fft // 2 + 1), Hann window, no padding."""
    x = np.asarray(x, np.float64)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * signal.windows.hann(n_fft, sym=False), axis=-1)) ** 2


def mel_filterbank(rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, n_mels x (n_fft // 2 + 1), unit peak."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax or rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (center - lower)
    falling = (upper - bins) / (upper - center)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(x: np.ndarray, rate: int = METRIC_RATE, n_fft: int = N_FFT, hop: int = HOP,
            n_mels: int = N_MELS) -> np.ndarray:
    """Log-mel frames (frames x n_mels): the embedding of the Fréchet distance."""
    return np.log(stft_power(x, n_fft, hop) @ mel_filterbank(rate, n_fft, n_mels).T + 1e-6)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of a and of b."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularize, as FID code does
        eps = np.eye(len(mu_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean.real)
    return float(max(value, 0.0))


def clips_frechet_distance(clips_a, clips_b, rate: int = METRIC_RATE) -> float:
    return frechet_distance(np.concatenate([log_mel(c, rate) for c in clips_a]),
                            np.concatenate([log_mel(c, rate) for c in clips_b]))


def subsets_frechet_distance(clip_frames, reference: np.ndarray, n: int, draws: int = 16,
                             seed: int = 0) -> list[float]:
    """The Fréchet distance to the `reference` frames of `draws` random sets of n clips,
    each clip given as its log-mel frames. With fewer clips a set's Gaussian is further
    from the reference's and varies more from set to set, so a generator's n clips are to
    be read against the corpus's own at the same n, not against all of them."""
    rng = np.random.default_rng(seed)
    return [frechet_distance(np.concatenate([clip_frames[i] for i in rng.choice(
                len(clip_frames), n, replace=False)]), reference) for _ in range(draws)]


# -- descriptors -----------------------------------------------------------------------

def loudness(x: np.ndarray, rate: int = METRIC_RATE) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4); silence reads SILENCE_LUFS."""
    import pyloudnorm
    x = np.asarray(x, np.float64)
    if x.size < int(0.4 * rate):  # shorter than one gating block
        x = np.pad(x, (0, int(0.4 * rate) - x.size))
    value = pyloudnorm.Meter(rate).integrated_loudness(x)
    return float(max(value, SILENCE_LUFS)) if np.isfinite(value) else SILENCE_LUFS


def _active_frames(power: np.ndarray) -> np.ndarray:
    """Frames within 60 dB of the loudest one (silent gaps would dominate frame means)."""
    energy = power.sum(axis=1)
    return power[energy > energy.max() * 1e-6] if energy.max() > 0 else power[:0]


def spectral_centroid(x: np.ndarray, rate: int = METRIC_RATE) -> float:
    """Magnitude-weighted mean frequency (Hz) of each active frame, averaged over frames."""
    magnitude = np.sqrt(_active_frames(stft_power(x)))
    if not magnitude.size:
        return 0.0
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / rate)
    return float(np.mean(magnitude @ freqs / magnitude.sum(axis=1)))


def spectral_flatness(x: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum, averaged over active frames."""
    power = _active_frames(stft_power(x)) + 1e-12
    if not power.size:
        return 0.0
    return float(np.mean(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)))


def onset_envelope(x: np.ndarray, rate: int = METRIC_RATE, hop: int = HOP // 2,
                   below_hz: float | None = None) -> np.ndarray:
    """Spectral flux: the half-wave-rectified rise of log-mel energy, one value per hop;
    with below_hz, of the STFT bins below that frequency instead (beats.py: kicks)."""
    # leading silence, so a hit at time 0 is a rise too
    x = np.concatenate([np.zeros(N_FFT), np.asarray(x, np.float64)])
    power = stft_power(x, N_FFT, hop)
    if below_hz is None:
        bands = power @ mel_filterbank(rate, N_FFT, N_MELS).T
    else:
        bands = power[:, :max(2, int(below_hz * N_FFT / rate))]
    db = 10.0 * np.log10(bands + 1e-10)
    db = np.maximum(db, db.max() - 80.0)  # an 80 dB floor keeps digital silence from flickering
    return np.maximum(0.0, np.diff(db, axis=0)).mean(axis=1)


def onset_times(x: np.ndarray, rate: int = METRIC_RATE, hop: int = HOP // 2) -> np.ndarray:
    """Onsets (seconds): flux peaks above a moving median plus a threshold, >= 50 ms apart."""
    env = onset_envelope(x, rate, hop)
    if env.size < 3 or env.max() <= 0:
        return np.zeros(0)
    frame_rate = rate / hop
    # half a second of median, or all of a shorter clip (an odd count; scipy pads the rest
    # with zeros anyway, and warns)
    kernel = min(2 * int(0.25 * frame_rate) + 1, env.size - (1 - env.size % 2))
    median = signal.medfilt(env, kernel_size=kernel)
    # a rise must stand out from the local median by 10 % of the largest one and by at
    # least ONSET_DB: stationary noise flickers by ~1 dB per band, a hit rises by tens of dB
    threshold = median + max(0.1 * env.max(), ONSET_DB)
    # a zero in front lets a rise in the very first frame count as a peak
    peaks, _ = signal.find_peaks(np.concatenate([[0.0], env]), height=np.concatenate([[0.0], threshold]),
                                 distance=max(1, int(0.05 * frame_rate)))
    # peak p is the rise into frame p of the padded signal; in log units it peaks as soon as a
    # hit enters the frame's last hop, i.e. at (p - 1/2) hops in the unpadded signal
    return np.maximum(0.0, (peaks - 0.5) * hop / rate)


def grid_alignment(x: np.ndarray, bpm: float, rate: int = METRIC_RATE,
                   per_beat: int = 4) -> float:
    """How tightly the onsets sit on a grid of `per_beat` steps per beat at `bpm` (16th
    notes by default), whatever its phase: the vector strength |mean(exp(2πi t/step))| of
    the onset times. Near 1 when every onset is on the grid, about 1/sqrt(onsets) for onsets
    at random; unlike a tempo estimate it does not care which multiple of the step the
    pattern repeats at."""
    times = onset_times(x, rate)
    if times.size == 0:
        return 0.0
    step = 60.0 / bpm / per_beat
    return float(np.abs(np.mean(np.exp(2j * np.pi * times / step))))


def onset_rate(x: np.ndarray, rate: int = METRIC_RATE) -> float:
    return float(len(onset_times(x, rate)) / (len(x) / rate))


def tempo(x: np.ndarray, rate: int = METRIC_RATE, hop: int = HOP // 2,
          low: float = 60.0, high: float = 200.0, prior_octaves: float = TEMPO_PRIOR_OCTAVES,
          harmonics: int = 2) -> tuple[float, float]:
    """(BPM, strength) from the autocorrelation of the onset envelope.

    Candidates between `low` and `high` BPM are weighted by a log-normal prior centred on
    120 BPM (as librosa's beat tracker does; ours is half an octave wide, which on the
    built-in corpus stops half- and two-thirds-tempo answers), so a pulse at 128 BPM is not
    reported as 64 or 85. Strength is the normalized autocorrelation at that lag: near 1
    for a metronome, near 0 for noise or silence. prior_octaves=1, harmonics=1 is librosa's
    default approach (bench/bench_metrics.py compares the two)."""
    env = onset_envelope(x, rate, hop)
    frame_rate = rate / hop
    env = env - env.mean()
    # a floor of 0.5 dB rms keeps the rounding noise of a steady tone from reading as a pulse
    energy = max(float(env @ env), 0.25 * env.size)
    max_lag = harmonics * (int(60.0 * frame_rate / low) + 1)
    if env.size <= max_lag + 1:
        return 0.0, 0.0
    corr = signal.correlate(env, env, mode="full", method="fft")[env.size - 1:]
    # unbiased estimate: a long lag overlaps fewer frames
    corr = corr[:max_lag + 1] / (energy * (env.size - np.arange(max_lag + 1)) / env.size)
    lags = np.arange(int(60.0 * frame_rate / high), max_lag // harmonics + 1)
    bpm = 60.0 * frame_rate / lags
    # a beat repeats at twice its period too; an off-beat pattern's period mostly does not
    score = sum(corr[k * lags] for k in range(1, harmonics + 1)) * np.exp(
        -0.5 * (np.log2(bpm / 120.0) / prior_octaves) ** 2)
    best = int(np.argmax(score))
    # refine the peak lag with a parabola through its neighbours
    lag = float(lags[best])
    if 0 < best < len(lags) - 1:
        y0, y1, y2 = corr[lags[best] - 1], corr[lags[best]], corr[lags[best] + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            lag += 0.5 * (y0 - y2) / denom
    strength = float(np.clip(corr[lags[best]], 0.0, 1.0))
    return (float(60.0 * frame_rate / lag) if strength > 0 else 0.0), strength


def descriptors(x: np.ndarray, rate: int = METRIC_RATE) -> dict:
    bpm, strength = tempo(x, rate)
    return {"loudness": loudness(x, rate), "centroid": spectral_centroid(x, rate),
            "flatness": spectral_flatness(x), "onset_rate": onset_rate(x, rate),
            "tempo": bpm, "tempo_strength": strength}


def compare_distributions(generated: list[float], reference: list[float]) -> dict:
    """How one descriptor's generated values sit in the reference's distribution.

    in_range: share of generated values inside the reference's 5-95 % range;
    w1: Wasserstein-1 distance in units of the reference's standard deviation (0 = same)."""
    g, r = np.asarray(generated, float), np.asarray(reference, float)
    lo, hi = np.percentile(r, [5, 95])
    scale = r.std() or abs(r.mean()) or 1.0
    return {"generated_mean": float(g.mean()), "generated_std": float(g.std()),
            "corpus_mean": float(r.mean()), "corpus_std": float(r.std()),
            "corpus_p5": float(lo), "corpus_p95": float(hi),
            "in_range": float(np.mean((g >= lo) & (g <= hi))),
            "w1": float(stats.wasserstein_distance(g, r) / scale)}


# -- reconstruction ----------------------------------------------------------------------

def _match(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(est))
    return np.asarray(ref[:n], np.float64), np.asarray(est[:n], np.float64)


def multi_resolution_stft_distance(ref: np.ndarray, est: np.ndarray,
                                   sizes=(512, 1024, 2048)) -> float:
    """Spectral convergence + mean |log magnitude difference|, averaged over FFT sizes
    (the loss of Parallel WaveGAN, Yamamoto et al. 2020). 0 for identical audio."""
    ref, est = _match(ref, est)
    total = 0.0
    for n_fft in sizes:
        r = np.sqrt(stft_power(ref, n_fft, n_fft // 4))
        e = np.sqrt(stft_power(est, n_fft, n_fft // 4))
        # an 80 dB floor below the reference's peak: digital silence would otherwise weigh
        # more in the log term than everything audible
        floor = max(r.max(), 1e-7) * 1e-4
        r, e = np.maximum(r, floor), np.maximum(e, floor)
        total += np.linalg.norm(r - e) / np.linalg.norm(r) + np.mean(np.abs(np.log(r / e)))
    return float(total / len(sizes))


def mel_distance(ref: np.ndarray, est: np.ndarray, rate: int = METRIC_RATE) -> float:
    """Mean absolute difference of natural-log mel spectrograms."""
    ref, est = _match(ref, est)
    r, e = np.exp(log_mel(ref, rate)), np.exp(log_mel(est, rate))
    floor = max(r.max(), 1e-6) * 1e-8  # 80 dB below the reference's peak (power)
    return float(np.mean(np.abs(np.log(np.maximum(r, floor)) - np.log(np.maximum(e, floor)))))


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019)."""
    ref, est = _match(ref, est)
    ref, est = ref - ref.mean(), est - est.mean()
    scale = (est @ ref) / max(ref @ ref, 1e-12)
    target = scale * ref
    noise = est - target
    return float(10.0 * np.log10(max(target @ target, 1e-12) / max(noise @ noise, 1e-12)))


def visqol(ref: np.ndarray, est: np.ndarray, rate: int = METRIC_RATE) -> float:
    """ViSQOL audio mode, MOS-LQO from 1 (bad) to ~4.7 (transparent), at 48 kHz."""
    from visqol import VisqolApi
    from .audio import resample
    ref, est = _match(ref, est)
    if rate != 48000:
        ref, est = resample(ref, rate, 48000), resample(est, rate, 48000)
    api = VisqolApi()
    api.create(mode="audio")
    return float(api.measure_from_arrays(ref, est, sample_rate=48000).moslqo)


def reconstruction_metrics(ref: np.ndarray, est: np.ndarray, rate: int = METRIC_RATE,
                           with_visqol: bool = True) -> dict:
    result = {"mr_stft": multi_resolution_stft_distance(ref, est),
              "mel_distance": mel_distance(ref, est, rate), "si_sdr": si_sdr(ref, est)}
    if with_visqol:
        result["visqol"] = visqol(ref, est, rate)
    return result
