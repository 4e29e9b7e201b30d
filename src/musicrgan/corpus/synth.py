"""`musicrgan synth`: the built-in corpus of techno and acid loops, made in numpy.

Each loop is the fewest whole bars at 120-150 BPM that last the seconds asked for (so clips
of that length can be cut from every loop): a four-on-the-floor kick with a pitch
envelope, claps or snares on two and four, closed and open hats, and an acid bass line (saw
or square through a resonant 24 dB low-pass whose cutoff follows an envelope, with accents
and slides) in a random key and scale; some loops add industrial noise and distortion.
Everything is drawn from `numpy.random.default_rng([seed, index])`, so a seed gives the
same corpus on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from .. import audio
from .manifest import MANIFEST, read_jsonl, rewrite_jsonl

NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
SCALES = {
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "phrygian": [0, 1, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "harmonic minor": [0, 2, 3, 5, 7, 8, 11],
    "minor pentatonic": [0, 3, 5, 7, 10],
}
KICK_PATTERNS = ["x...x...x...x...", "x...x...x...x.x.", "x...x...x..xx...", "x..xx...x...x..."]
STEPS_PER_BAR = 16
# written into each loop's manifest entry; loops rendered by another version are rendered
# again (version 2: at least the seconds asked for; version 1 rounded to the nearest bar,
# so half the loops fell short and `evaluate --seconds` dropped them from its reference)
RENDER_VERSION = 2


@dataclass
class Loop:
    audio: np.ndarray
    labels: dict


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _env(n: int, rate: int, decay_s: float, attack_s: float = 0.001) -> np.ndarray:
    t = np.arange(n) / rate
    attack = np.clip(t / attack_s, 0, 1)
    return attack * np.exp(-t / decay_s)


def _kick(rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.45 * rate)
    t = np.arange(n) / rate
    f_hi, f_lo, sweep = rng.uniform(130, 190), rng.uniform(42, 56), rng.uniform(0.025, 0.045)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / sweep)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    body = np.sin(phase) * _env(n, rate, rng.uniform(0.18, 0.3), 0.0005)
    click = rng.standard_normal(n) * _env(n, rate, 0.002, 0.0002) * 0.3
    return np.tanh(1.6 * (body + click))


def _bandpassed_noise(n: int, rate: int, low: float, high: float, rng) -> np.ndarray:
    nyq = rate / 2
    sos = signal.butter(2, [min(low, 0.9 * nyq) / nyq, min(high, 0.95 * nyq) / nyq], "band",
                        output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _clap(rate: int, rng) -> np.ndarray:
    n = int(0.3 * rate)
    noise = _bandpassed_noise(n, rate, 900, 2600, rng)
    t = np.arange(n) / rate
    env = np.zeros(n)
    for delay in (0.0, 0.011, 0.022):  # a clap is several hands, slightly apart
        env += (t >= delay) * np.exp(-np.clip(t - delay, 0, None) / 0.008)
    env += (t >= 0.03) * np.exp(-np.clip(t - 0.03, 0, None) / 0.12) * 0.8
    return noise * env / (np.max(np.abs(noise * env)) + 1e-9)


def _snare(rate: int, rng) -> np.ndarray:
    n = int(0.25 * rate)
    t = np.arange(n) / rate
    tone = np.sin(2 * np.pi * rng.uniform(170, 220) * t) * _env(n, rate, 0.05)
    noise = _bandpassed_noise(n, rate, 1500, 7000, rng) * _env(n, rate, 0.09)
    out = 0.6 * tone + noise / (np.max(np.abs(noise)) + 1e-9)
    return out / np.max(np.abs(out))


def _hat(rate: int, rng, open_: bool) -> np.ndarray:
    n = int((0.35 if open_ else 0.06) * rate)
    noise = _bandpassed_noise(n, rate, min(6000, 0.3 * rate), 0.49 * rate, rng)
    out = noise * _env(n, rate, 0.07 if open_ else 0.015)
    return out / (np.max(np.abs(out)) + 1e-9)


def _place(track: np.ndarray, hit: np.ndarray, start: int, gain: float) -> None:
    end = min(len(track), start + len(hit))
    track[start:end] += gain * hit[:end - start]


def _biquad_lowpass(cutoff: float, q: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    w0 = 2 * np.pi * cutoff / rate
    alpha = math.sin(w0) / (2 * q)
    cos_w0 = math.cos(w0)
    b = np.array([(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2])
    a = np.array([1 + alpha, -2 * cos_w0, 1 - alpha])
    return b / a[0], a / a[0]


def _acid_line(rate: int, rng, step_len: float, steps: int, root: int, scale: list[int]):
    """Saw/square bass through a resonant low-pass swept by a per-note envelope."""
    gates = rng.random(16) < 0.7
    gates[0] = True
    degrees = rng.integers(0, len(scale), 16)
    octaves = rng.choice([0, 0, 0, 1, -1], 16)
    accents = rng.random(16) < 0.3
    slides = rng.random(16) < 0.2
    notes = [root + scale[d] + 12 * o for d, o in zip(degrees, octaves)]
    wave = str(rng.choice(["saw", "square"]))
    resonance = rng.uniform(4, 12)
    cutoff_base, env_mod = rng.uniform(150, 400), rng.uniform(800, 2600)
    decay = rng.uniform(0.08, 0.3)

    n = int(round(steps * step_len))
    freq = np.zeros(n)
    gate = np.zeros(n)
    cutoff_env = np.zeros(n)
    accent_env = np.ones(n)
    prev_note = notes[0]
    env_start = 0
    for step in range(steps):
        s = step % 16
        a, b = int(round(step * step_len)), int(round((step + 1) * step_len))
        if not gates[s]:
            freq[a:b] = _midi_hz(prev_note)
            continue
        held = slides[(s - 1) % 16] and gates[(s - 1) % 16] and step > 0
        target = _midi_hz(notes[s])
        if held:  # slide: glide from the previous pitch, envelope not retriggered
            glide = np.exp(-np.arange(b - a) / (0.045 * rate))
            freq[a:b] = target + (_midi_hz(prev_note) - target) * glide
        else:
            freq[a:b] = target
            env_start = a
        length = (b - a) if slides[s] else int(0.55 * (b - a))
        gate[a:a + length] = 1.0
        t = (np.arange(a, b) - env_start) / rate
        cutoff_env[a:b] = np.exp(-t / decay)
        accent_env[a:b] = 1.5 if accents[s] else 1.0
        prev_note = notes[s]

    phase = np.cumsum(freq) / rate
    osc = 2 * (phase % 1.0) - 1 if wave == "saw" else np.sign(np.sin(2 * np.pi * phase))
    # de-click the gate with a few milliseconds of smoothing
    ramp = np.ones(int(0.003 * rate)) / int(0.003 * rate)
    amp = np.convolve(gate, ramp, mode="same") * accent_env

    cutoff = cutoff_base + env_mod * cutoff_env * accent_env
    cutoff = np.clip(cutoff, 40, 0.42 * rate)
    out = np.zeros(n)
    zi1, zi2 = np.zeros(2), np.zeros(2)
    block = 32  # the cutoff moves every 2 ms at 16 kHz: smooth to the ear, cheap to compute
    for a in range(0, n, block):
        c = float(cutoff[a])
        b1, a1 = _biquad_lowpass(c, resonance, rate)
        b2, a2 = _biquad_lowpass(c, 0.707, rate)
        y, zi1 = signal.lfilter(b1, a1, osc[a:a + block], zi=zi1)
        out[a:a + block], zi2 = signal.lfilter(b2, a2, y, zi=zi2)
    out = np.tanh(1.5 * out * amp / max(1.0, resonance / 4))
    pattern = [
        ("" if not g else NOTE_NAMES[n_ % 12] + str(n_ // 12 - 1) + ("!" if ac else "")
         + ("~" if sl else ""))
        for g, n_, ac, sl in zip(gates, notes, accents, slides)]
    return out, {"bass_wave": wave, "bass_pattern": pattern}


def render_loop(rate: int, seconds: float, seed: int, index: int) -> Loop:
    """One loop, deterministic for (seed, index), at least `seconds` long."""
    rng = np.random.default_rng([seed, index])
    bpm = int(rng.integers(120, 151))
    bars = max(1, math.ceil(seconds * bpm / 240 - 1e-9))
    step_len = 60 / bpm / 4 * rate
    steps = bars * STEPS_PER_BAR
    n = int(round(steps * step_len))
    key = int(rng.integers(0, 12))
    scale_name = str(rng.choice(list(SCALES)))
    root = 36 + key  # C2..B2
    kick_pattern = str(rng.choice(KICK_PATTERNS))
    backbeat = str(rng.choice(["clap", "snare"]))
    open_hats = bool(rng.random() < 0.6)
    industrial = bool(rng.random() < 0.35)
    drive = float(rng.choice([1.0, 1.0, 1.5, 2.5]))

    kick, back = _kick(rate, rng), (_clap if backbeat == "clap" else _snare)(rate, rng)
    closed, opened = _hat(rate, rng, False), _hat(rate, rng, True)
    drums = np.zeros(n)
    hats = np.zeros(n)
    for step in range(steps):
        s, start = step % 16, int(round(step * step_len))
        if kick_pattern[s] == "x":
            _place(drums, kick, start, 0.95)
        if s in (4, 12):
            _place(drums, back, start, 0.4)
        if s % 4 == 2:
            _place(hats, opened if open_hats else closed, start, 0.16)
        elif s % 2 == 1 or rng.random() < 0.5:
            _place(hats, closed, start, 0.06 + 0.04 * (s % 2 == 0))
    bass, bass_labels = _acid_line(rate, rng, step_len, steps, root, SCALES[scale_name])
    mix = drums + hats + 0.55 * bass
    if industrial:
        noise = _bandpassed_noise(n, rate, 200, 0.45 * rate, rng)
        stutter = np.zeros(n)
        for step in range(steps):
            if rng.random() < 0.25:
                a = int(round(step * step_len))
                stutter[a:a + int(step_len * 0.5)] = 1
        rise = np.linspace(0.01, 0.06, n)
        mix += noise / (np.max(np.abs(noise)) + 1e-9) * (rise + 0.08 * stutter)
    mix = np.tanh(drive * mix) / np.tanh(drive)
    mix = 0.89 * mix / (np.max(np.abs(mix)) + 1e-9)
    labels = {"bpm": bpm, "bars": bars, "key": NOTE_NAMES[key], "scale": scale_name,
              "kick_pattern": kick_pattern, "backbeat": backbeat, "open_hats": open_hats,
              "industrial": industrial, "drive": drive, **bass_labels}
    return Loop(mix.astype(np.float32), labels)


def synth_corpus(out: Path, *, loops: int = 32, seconds: float = 8.0, rate: int = 16000,
                 seed: int = 0, test_fraction: float = 0.125, progress: bool = False) -> list[dict]:
    """Write `loops` loops into `out/train` and `out/test` with a manifest of their labels.

    The last ceil(loops * test_fraction) loops are the test split (at least one when there
    are two or more loops). Loops already on disk with the same settings are kept.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_test = 0 if loops < 2 else max(1, math.ceil(loops * test_fraction))
    existing = {e.get("path"): e for e in read_jsonl(out / MANIFEST)}
    entries = []
    indices = range(loops)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="synth", unit="loop")
    for i in indices:
        split = "test" if i >= loops - n_test else "train"
        rel = f"{split}/loop_{i:04d}.wav"
        settings = {"seed": seed, "index": i, "rate": rate, "requested_seconds": seconds,
                    "render_version": RENDER_VERSION}
        prev = existing.get(rel)
        if prev and all(prev.get(k) == v for k, v in settings.items()) and (out / rel).is_file():
            entries.append(prev)
            continue
        loop = render_loop(rate, seconds, seed, i)
        audio.write_wav(out / rel, loop.audio, rate)
        entries.append({"path": rel, "split": split, "seconds": round(loop.audio.size / rate, 4),
                        "source": "synth", **settings, **loop.labels})
    # loops beyond `loops` from an earlier, larger run are no longer part of this corpus
    kept = {e["path"] for e in entries}
    for path, entry in existing.items():
        if path in kept:
            continue
        if entry.get("source") == "synth":
            (out / path).unlink(missing_ok=True)
        else:
            entries.append(entry)  # converted files sharing the folder stay untouched
    rewrite_jsonl(out / MANIFEST, entries)
    return entries
