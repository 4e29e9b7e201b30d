"""`musicrgan evaluate RUN`: how close a run's generated audio is to its corpus, in numbers.

Generates n clips, then compares them with held-out (test split) clips of the same length
on the metrics of `musicrgan.metrics`, all computed at 16 kHz mono so runs at different
rates are comparable. Two references give the Fréchet distance a scale: the corpus's own
train split against its test split (what a model that reproduces the corpus would score)
and white noise at the corpus's loudness (what a model that learned nothing but loudness
would score). Results go to RUN/eval.json and the clips to RUN/eval/.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from . import audio, mastering, metrics
from .audio import atomic_write_text
from .data import CorpusError, corpus_clips
from .models.base import Encodes, GenerationRequest, Generates, RequestError
from .runs import Run, training_seconds

EVAL_JSON = "eval.json"
EVAL_CLIPS = "eval"


def _noise_like(clips: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(c.size) * (np.sqrt(np.mean(np.square(c))) or 1e-3) for c in clips]


def _finite(value):
    return value if value is None or math.isfinite(value) else None


def evaluate(run: Run | Path, *, data: str | None = None, n: int = 8, seconds: float = 4.0,
             seed: int = 0, checkpoint: str = "best", temperature: float | None = None,
             reference_clips: int = 64,
             progress: bool = True) -> dict:
    from .generate import generate_clips
    run = run if isinstance(run, Run) else Run(run)
    if n < 2:
        raise RequestError("n", f"must be at least 2 (a distribution needs more than one "
                                f"clip), got {n}")
    data = data or run.data
    if not Path(data).is_dir():
        raise RequestError("data", f"{data}: corpus not found")
    test = corpus_clips(data, "test", seconds, reference_clips)
    try:
        train = corpus_clips(data, "train", seconds, reference_clips)
    except CorpusError:
        train = None

    if not isinstance(run.family, Generates):  # an autoencoder: how well it reconstructs
        return _save(run, _header(run, data, checkpoint, n, seconds, seed) | {
            "reconstruction": reconstruction(run, test[:n], checkpoint)})
    generated, family, made = generate_clips(
        run, GenerationRequest(n=n, seconds=seconds, seed=seed, temperature=temperature),
        checkpoint=checkpoint, progress=progress)
    clip_dir = run.path / EVAL_CLIPS
    for i, clip in enumerate(generated):
        audio.write_wav(clip_dir / f"clip_{i + 1:02d}.wav", clip, family.rate)
    if family.rate != metrics.METRIC_RATE:
        generated = [audio.resample(c, family.rate, metrics.METRIC_RATE) for c in generated]

    started = time.perf_counter()
    test_descriptors = [metrics.descriptors(c) for c in test]
    test_frames = np.concatenate([metrics.log_mel(c) for c in test])

    def distance_to_test(clips):
        return metrics.frechet_distance(np.concatenate([metrics.log_mel(c) for c in clips]),
                                        test_frames)

    def measure(clips):
        clip_descriptors = [metrics.descriptors(c) for c in clips]
        return distance_to_test(clips), clip_descriptors, {
            name: metrics.compare_distributions([d[name] for d in clip_descriptors],
                                                [d[name] for d in test_descriptors])
            for name in metrics.DESCRIPTORS}

    distance, generated_descriptors, descriptors = measure(generated)
    if train:
        # the share of the corpus's own train clips inside the test split's range: what a
        # model that reproduced its training audio would score (a split of a dozen loops
        # has a narrow 5-95 % range: on the demo's corpus 53-83 %, docs/compare.md)
        train_descriptors = [metrics.descriptors(c) for c in train]
        for name in metrics.DESCRIPTORS:
            descriptors[name]["train_in_range"] = metrics.compare_distributions(
                [d[name] for d in train_descriptors],
                [d[name] for d in test_descriptors])["in_range"]
    train_frames = [metrics.log_mel(c) for c in train or []]
    frechet = {
        "generated_vs_test": distance,
        "train_vs_test": metrics.frechet_distance(np.concatenate(train_frames), test_frames)
        if train else None,
        # the corpus's own train clips, as many as were generated (the yardstick for them)
        "train_vs_test_of_n": _of_n(train_frames, test_frames, len(generated), seed),
        "noise_vs_test": distance_to_test(_noise_like(test, seed))}
    # the same clips at the corpus's level (generate --match-loudness): what mastering buys
    target = mastering.corpus_loudness(run.path, run.data if Path(run.data).is_dir() else data)
    distance, _, matched = measure(
        [mastering.match_loudness(c, metrics.METRIC_RATE, target) for c in generated])
    loudness_matched = {"target_lufs": round(target, 2), "frechet": distance,
                        "descriptors": matched}

    tempo_asked = None
    if "bpm" in made:
        # a family with a beat clock: does each clip keep the tempo it was given? The tempo
        # estimate can land on 2/3 or 4/5 of a syncopated pattern's beat; the alignment of
        # onsets to the 16th-note grid of the tempo asked for (and, as a control, of a tempo
        # 7 % off) does not
        found = [d["tempo"] for d in generated_descriptors]
        tempo_asked = {
            "asked": made["bpm"], "found": found,
            "within_3_percent": float(np.mean(
                [abs(f / a - 1) < 0.03 for f, a in zip(found, made["bpm"])])),
            "grid_alignment": float(np.mean(
                [metrics.grid_alignment(c, a) for c, a in zip(generated, made["bpm"])])),
            "grid_alignment_7_percent_off": float(np.mean(
                [metrics.grid_alignment(c, 1.07 * a) for c, a in zip(generated, made["bpm"])]))}

    wall = made["generation_seconds"]
    result = _header(run, data, checkpoint, n, seconds, seed) | {
        "temperature": made["temperature"],
        "reference_clips": {"test": len(test), "train": len(train) if train else 0},
        "frechet": frechet,
        "descriptors": descriptors,
        "loudness_matched": loudness_matched,
        "generated_descriptors": generated_descriptors,
        "speed": {"generation_seconds": wall,
                  # seconds of audio per second of wall time, for each stream of the batch;
                  # includes building the compiled loop, as a user's call does
                  "realtime_factor_per_stream": round(seconds / wall, 3) if wall else None,
                  "realtime_factor_batch": round(n * seconds / wall, 3) if wall else None},
        "reconstruction": reconstruction(run, test[:n], checkpoint)
        if isinstance(family, Encodes) else None,
        "tempo_asked": tempo_asked,
        "clips": [str(p.relative_to(run.path)) for p in sorted(clip_dir.glob("clip_*.wav"))][:n],
        "metric_seconds": round(time.perf_counter() - started, 2),
    }
    return _save(run, result)


def _of_n(train_frames: list, test_frames: np.ndarray, n: int, seed: int) -> dict | None:
    if len(train_frames) <= n:
        return None
    distances = metrics.subsets_frechet_distance(train_frames, test_frames, n, seed=seed)
    return {"clips": n, "draws": len(distances), "mean": float(np.mean(distances)),
            "std": float(np.std(distances)), "min": min(distances), "max": max(distances)}


def _header(run: Run, data, checkpoint: str, n: int, seconds: float, seed: int) -> dict:
    state = run.state
    return {"run": str(run.path), "family": run.family.name, "data": str(data),
            "checkpoint": run.checkpoint(checkpoint).name, "epochs": state["epochs_done"],
            "training_seconds": round(training_seconds(state), 1),
            "parameters": int(run.model(checkpoint).count_params()),
            "n": n, "seconds": seconds, "seed": seed, "metric_rate": metrics.METRIC_RATE}


def _save(run: Run, result: dict) -> dict:
    atomic_write_text(run.path / EVAL_JSON, json.dumps(result, indent=1, default=_finite))
    return result


def reconstruction(run: Run, clips: list[np.ndarray], checkpoint: str = "best") -> dict:
    """Mean reconstruction metrics (metrics.reconstruction_metrics) of clips at the metric
    rate, encoded and decoded by an autoencoder run, and the reconstructions' Fréchet
    distance to the clips: the nearest a prior over the autoencoder's latents can come to
    them (at best it draws the clips' own latents). And the pulse the reconstructions keep:
    their mean tempo strength and onset rate beside the clips' (`_of_clips`), since a
    prior's songs have no more pulse than its autoencoder's reconstructions (3-minute vqvaes
    with the same spectral distances kept 0.34-0.49 of the loops' 0.52: docs/compare.md)."""
    family, model = run.family, run.model(checkpoint)
    batch = np.stack(clips) if family.rate == metrics.METRIC_RATE else np.stack(
        [audio.resample(c, metrics.METRIC_RATE, family.rate) for c in clips])
    decoded = family.reconstruct(model, batch)
    rows = [metrics.reconstruction_metrics(ref, est, family.rate)
            for ref, est in zip(batch, decoded)]
    result = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    at_metric_rate = [np.asarray(d) if family.rate == metrics.METRIC_RATE
                      else audio.resample(np.asarray(d), family.rate, metrics.METRIC_RATE)
                      for d in decoded]
    pulse = {}
    for suffix, group in (("", at_metric_rate), ("_of_clips", clips)):
        pulse[f"tempo_strength{suffix}"] = float(np.mean([metrics.tempo(c)[1] for c in group]))
        pulse[f"onset_rate{suffix}"] = float(np.mean([metrics.onset_rate(c) for c in group]))
    return result | {"frechet": metrics.clips_frechet_distance(at_metric_rate, clips)} | pulse


def format_table(result: dict) -> str:
    title = (f"{result['run']} ({result['family']}, {result['epochs']} epochs, "
             f"{result['training_seconds'] / 60:.1f} training min, "
             f"{result['parameters']:,} parameters)")
    if "frechet" not in result:  # an autoencoder's: reconstruction only
        return title + "\n  reconstruction of the test split: " + ", ".join(
            f"{k} {v:.3g}" for k, v in result["reconstruction"].items())
    f = result["frechet"]
    lines = [title,
             f"  Fréchet distance (log-mel, lower is better): {f['generated_vs_test']:.2f}   "
             f"[corpus train vs test {_fmt(f['train_vs_test'])}{_of_n_text(f)}, "
             f"noise {f['noise_vs_test']:.2f}]",
             f"  {'descriptor':15s} {'generated':>22s} {'corpus (test)':>22s} {'in range':>9s} "
             f"{'W1/std':>7s} {'train split in range':>21s}"]
    for name, d in result["descriptors"].items():
        train_share = d.get("train_in_range")
        lines.append(f"  {name:15s} {d['generated_mean']:12.3g} ± {d['generated_std']:<8.3g}"
                     f"{d['corpus_mean']:12.3g} ± {d['corpus_std']:<8.3g}"
                     f"{d['in_range'] * 100:8.0f}% {d['w1']:7.2f} "
                     + ("-" if train_share is None else f"{train_share * 100:.0f}%").rjust(21))
    m = result.get("loudness_matched")
    if m:
        lines.append(f"  with --match-loudness (to {m['target_lufs']:.1f} LUFS): Fréchet "
                     f"{m['frechet']:.2f}; in range: " + ", ".join(
                         f"{k} {d['in_range'] * 100:.0f}%" for k, d in m["descriptors"].items()))
    s = result["speed"]
    lines.append(f"  speed: {s['realtime_factor_per_stream']}x real time per stream, "
                 f"{s['realtime_factor_batch']}x for the batch of {result['n']}")
    if result.get("tempo_asked"):
        t = result["tempo_asked"]
        lines.append(f"  tempo: {t['within_3_percent'] * 100:.0f}% of clips within 3 % of the "
                     f"tempo they were generated at; onsets on its 16th-note grid "
                     f"{t['grid_alignment']:.2f} (1 = all on it; 7 % off tempo: "
                     f"{t['grid_alignment_7_percent_off']:.2f})")
    if result["reconstruction"]:
        lines.append("  reconstruction: " + ", ".join(
            f"{k} {v:.3g}" for k, v in result["reconstruction"].items()))
    return "\n".join(lines)


def _of_n_text(frechet: dict) -> str:
    of_n = frechet.get("train_vs_test_of_n")
    return "" if not of_n else (f"; {of_n['clips']} of its clips: {of_n['mean']:.2f} ± "
                                f"{of_n['std']:.2f}, {of_n['min']:.2f}-{of_n['max']:.2f}")


def _fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)
