import numpy as np
import pytest
import soundfile as sf

from musicrgan import audio
from conftest import chord, encode


def dominant_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate / len(x)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a", "opus"])
def test_every_format_decodes_to_mono_at_the_target_rate(tmp_path, ext):
    src_rate = 48000 if ext == "opus" else 44100
    tone = chord(2.0, src_rate, freqs=(440.0,))
    path = encode(tmp_path / f"tone.{ext}", tone, src_rate, channels=2)
    x = audio.load(path, 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    # lossy encoders add priming samples; the length stays within 0.1 s
    assert abs(x.size / 16000 - 2.0) < 0.1
    assert abs(dominant_hz(x[2000:30000], 16000) - 440) < 3
    assert 0.19 < np.sqrt(np.mean(x[4000:28000] ** 2)) < 0.235  # 0.3 peak sine: rms 0.212


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    above = 0.5 * np.sin(2 * np.pi * 7000 * t).astype(np.float32)  # aliases to 1 kHz at 8 kHz
    below = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    down_above = audio.resample(above, rate, 8000)
    down_below = audio.resample(below, rate, 8000)
    assert abs(down_below.size - 8000) <= 1
    rms = lambda v: float(np.sqrt(np.mean(v[500:-500] ** 2)))  # noqa: E731
    assert rms(down_below) > 0.3
    assert rms(down_above) < 0.003  # >40 dB down: filtered, not folded back to 1 kHz


def test_write_wav_is_16_bit_and_leaves_no_temporary(tmp_path):
    x = chord(1.0, 8000)
    audio.write_wav(tmp_path / "out.wav", x, 8000)
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.subtype, info.samplerate, info.frames) == ("PCM_16", 8000, 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_peaks_over_full_scale_are_limited_not_clipped(tmp_path):
    """An unbounded decoder's output (the vqvae's peaks reach 1.5): written with the peaks
    brought down smoothly, not flat-topped, and the rest of the file as it was."""
    x = chord(1.0, 8000, amp=0.5)
    x[4000:4040] *= 3.0   # 5 ms of a hit over full scale
    audio.write_wav(tmp_path / "loud.wav", x, 8000)
    written = sf.read(tmp_path / "loud.wav", dtype="float32")[0]
    flat = np.abs(written) >= 32766 / 32768
    assert np.abs(written).max() > 0.99 and flat.sum() <= 2   # one sample a peak, no plateau
    reach = int(2 * audio.LIMITER_SECONDS * 8000)
    np.testing.assert_allclose(written[:4000 - reach], x[:4000 - reach], atol=1 / 32768)
    np.testing.assert_allclose(written[4040 + reach:], x[4040 + reach:], atol=1 / 32768)
    assert np.corrcoef(written[4000:4040], x[4000:4040])[0, 1] > 0.95   # the hit's shape


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"hello world\n" * 50, "ffmpeg")])
def test_undecodable_files_raise_audio_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match=reason):
        audio.load(path, 16000)
