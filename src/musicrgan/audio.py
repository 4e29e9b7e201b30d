"""Decoding, resampling and writing audio: the only module that touches codecs.

soundfile (libsndfile) decodes files already at the target rate; ffmpeg decodes the rest
(other rates, m4a/aac, opus, odd containers) and does every resampling, with the soxr resampler, whose
steep anti-alias filter keeps content above the new Nyquist frequency out.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import minimum_filter1d, uniform_filter1d

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif",
                    ".aiff", ".wma", ".webm", ".mp4"}
# Formats whose libsndfile decoders we trust; the rest always go through ffmpeg.
_SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}


class AudioError(Exception):
    """A file could not be decoded; the message says why in a few words."""


@functools.cache
def ffmpeg_exe() -> str:
    """The system's ffmpeg if there is one, else the binary shipped in imageio-ffmpeg."""
    found = os.environ.get("MUSICRGAN_FFMPEG") or shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - only without the wheel and without ffmpeg
        raise AudioError("ffmpeg not found: install ffmpeg or `pip install imageio-ffmpeg`") from exc


def _probe(path: Path) -> sf._SoundFileInfo | None:
    """Rate and channels from libsndfile when it knows the format (cheap: header only)."""
    if path.suffix.lower() not in _SOUNDFILE_EXTENSIONS:
        return None
    try:
        return sf.info(str(path))
    except Exception:
        return None


def _mono_filter(channels: int | None, rate: int) -> str:
    # An explicit average: ffmpeg's own `-ac 1` downmix weights channels by layout (-3 dB
    # each for stereo), which would make stereo sources 3 dB louder than mono ones.
    resample = f"aresample={rate}:resampler=soxr"
    if not channels or channels == 1:
        return resample
    mix = "+".join(f"{1 / channels:.8f}*c{i}" for i in range(channels))
    return f"pan=mono|c0={mix},{resample}"


def _ffmpeg_decode(path: Path, rate: int, channels: int | None) -> np.ndarray:
    # Unknown channel count (formats libsndfile can't read): keep every channel, average here.
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-vn", "-af", _mono_filter(channels, rate), "-c:a", "pcm_f32le", "-f", "wav",
           "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise AudioError(_ffmpeg_reason(proc.stderr))
    try:
        frames, _ = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except Exception:
        frames = np.zeros((0, 1), np.float32)
    if frames.shape[0] == 0:
        reason = _ffmpeg_reason(proc.stderr) if proc.stderr.strip() else "no audio stream"
        raise AudioError(reason)
    return frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)


def _ffmpeg_reason(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "ffmpeg could not decode it"
    # ffmpeg prefixes messages with the file name; the last line is the useful one
    return "ffmpeg: " + lines[-1].split(": ", 1)[-1][:200]


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample mono float32 audio with ffmpeg's soxr resampler (anti-aliased)."""
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
           "-f", "f32le", "-ar", str(rate_in), "-ac", "1", "-i", "pipe:0",
           "-af", f"aresample={rate_out}:resampler=soxr", "-f", "f32le", "pipe:1"]
    proc = subprocess.run(cmd, input=np.asarray(audio, "<f4").tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise AudioError(_ffmpeg_reason(proc.stderr))
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def load(path: str | os.PathLike, rate: int) -> np.ndarray:
    """Decode any audio file to float32 mono at `rate` Hz. Raises AudioError."""
    path = _check_file(path)
    info = _probe(path)
    if info is not None and info.samplerate == rate:
        audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
        if audio.shape[0] == 0:
            raise AudioError("no audio frames")
        return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)
    # one ffmpeg process decodes and resamples: cheaper than decoding here and piping back
    return _ffmpeg_decode(path, rate, info.channels if info else None)


def transcode(path: str | os.PathLike, target: str | os.PathLike, rate: int) -> None:
    """Decode `path` into a 16-bit mono wav at `rate`, written to `target` (not atomically:
    callers write to a temporary name). The fast path is one ffmpeg process writing the wav
    itself, as the original conversion script did."""
    path = _check_file(path)
    info = _probe(path)
    if info is None or info.samplerate == rate:
        _write_pcm16(target, load(path, rate), rate)
        return
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(path),
           "-vn", "-af", _mono_filter(info.channels, rate), "-c:a", "pcm_s16le", "-f", "wav",
           str(target)]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        Path(target).unlink(missing_ok=True)
        raise AudioError(_ffmpeg_reason(proc.stderr))


def _check_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AudioError("not a file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    return path


FULL_SCALE = 32767 / 32768       # the largest 16-bit sample
LIMITER_SECONDS = 0.005          # the limiter's gain moves over 5 ms around a peak


def limit_peaks(x: np.ndarray, rate: int, ceiling: float = FULL_SCALE) -> np.ndarray:
    """Peaks above `ceiling` brought down to it, the gain reduction spread smoothly over
    LIMITER_SECONDS either side (no clipping, no clicks). The gain near each peak is the
    minimum needed within the window, then averaged over at most the same radius, so it
    never rises above what any peak needs."""
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12))
    if need.min() >= 1.0:
        return x
    radius = max(1, int(LIMITER_SECONDS * rate))
    gain = uniform_filter1d(minimum_filter1d(need, 2 * radius + 1), radius + 1)
    return (x * np.minimum(gain, need)).astype(np.float32)


def _write_pcm16(target, audio: np.ndarray, rate: int) -> None:
    # a model's peaks above full scale (an unbounded decoder's, a decoded mp3's overs) are
    # limited, not clipped: a clipped peak is a flat top, heard as a crackle
    sf.write(str(target), limit_peaks(np.asarray(audio, dtype=np.float32), rate), rate,
             subtype="PCM_16", format="WAV")


def duration(path: str | os.PathLike) -> float:
    """Seconds of audio in a file soundfile can read (corpus wavs)."""
    return sf.info(str(path)).duration


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read (0600); a finished file gets the permissions
# any other new file would (0644 with the usual umask), as `cp` or ffmpeg would give it
FILE_MODE = 0o666 & ~_umask()


def temporary_file(path: Path, name: str) -> str:
    """A new hidden `.NAME.XXXX.tmp` beside path, with the usual permissions of a new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name[:40]}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return tmp


def write_wav(path: str | os.PathLike, audio: np.ndarray, rate: int) -> None:
    """Write 16-bit PCM wav atomically: a temporary name in the same folder, then rename.

    A killed process leaves at most a hidden `.tmp` file, never a wav that looks whole.
    (No fsync: rename is atomic against a killed process, which is what we guard against.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path, path.stem)
    try:
        _write_pcm16(tmp, audio, rate)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path, path.name)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
