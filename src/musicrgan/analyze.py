"""`musicrgan analyze RUN --data CORPUS --out DIR`: what the latent space of a run with
continuous latents (wave-vae, latent-vae, a Gaussian spec-vae) holds, as the hierarchical
techno-loop brief asks:

- each latent dimension's Spearman correlation with the level (RMS, dB) and the spectral
  centroid of the audio frame it encodes (one frame per latent step, aligned);
- PCA fidelity: how many principal directions hold 80, 90, 95 and 99 % of the latents'
  variance (how many of the dimensions the model really uses);
- along straight paths between pairs of loops: the loudness and centroid of each clip on
  the way, plotted, and a smoothness score per path and descriptor: |change from end to
  end| / (sum of |change| from clip to clip), 1 when the descriptor moves one way only,
  near 0 when it jumps about;

into DIR/analysis.json, DIR/index.html (tables, plots, the paths' audio), DIR/img/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import audio, metrics
from .audio import atomic_write_text
from .data import corpus_files
from .generate import continuous_encoder, path_clips
from .models.base import RequestError
from .report import pyplot, save_figure, clip_card, page, spectrogram_png, table
from .runs import Run, RunError, writable_folder

RESULT = "analysis.json"
VARIANCE_SHARES = (0.8, 0.9, 0.95, 0.99)
MAX_FILES = 64          # corpus files whose latents are analysed
MAX_SECONDS = 30.0      # of each


def frame_descriptors(clip: np.ndarray, rate: int, hop: int, steps: int) -> dict:
    """Level (dB RMS) and spectral centroid (Hz) of each of `steps` frames of `hop` samples
    (the audio each latent step encodes); silent frames' centroid is NaN."""
    frames = np.zeros((steps, hop), np.float32)
    usable = clip[:steps * hop]
    frames.flat[:usable.size] = usable
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    window = np.hanning(hop) if hop > 1 else np.ones(1)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(hop, 1.0 / rate)
    total = power.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.where(total > 1e-10, power @ freqs / total, np.nan)
    return {"level_db": level, "centroid_hz": centroid}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan")
    return float(spearmanr(x[keep], y[keep]).statistic)


def pca_dimensions(latents: np.ndarray) -> dict:
    """Principal directions needed for each share of the variance, and the shares."""
    centred = latents - latents.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    explained = singular ** 2 / max(float(np.sum(singular ** 2)), 1e-20)
    cumulative = np.cumsum(explained)
    return {"dimensions_for": {f"{share:.0%}": int(np.searchsorted(cumulative, share - 1e-9) + 1)
                               for share in VARIANCE_SHARES},
            "explained_variance": [round(float(e), 5) for e in explained]}


def smoothness(values) -> float:
    """|last - first| / sum |steps|: 1 for a monotone path, toward 0 for a jumpy one."""
    values = np.asarray(values, np.float64)
    travelled = float(np.sum(np.abs(np.diff(values))))
    return 1.0 if travelled == 0 else float(abs(values[-1] - values[0]) / travelled)


def analyze(run: Run | Path, data: str | Path, out: Path, *, pairs: int = 3, steps: int = 9,
            seconds: float = 4.0, checkpoint: str = "best", seed: int = 0) -> dict:
    run = run if isinstance(run, Run) else Run(run)
    family = run.family
    try:
        continuous_encoder(family)
    except RequestError as exc:
        raise RunError(f"analyze {exc.reason}") from None
    if steps < 3 or pairs < 1:
        raise RunError("analyze needs at least 3 steps per path and 1 pair")
    files = corpus_files(data, "test") or corpus_files(data, "train")
    if len(files) < 2:
        raise RunError(f"{data} has fewer than 2 files to analyse and to interpolate between")
    out = writable_folder(out, "output folder")
    model, rate, hop = run.model(checkpoint), family.rate, family.latent_hop()
    rng = np.random.default_rng(seed)
    files = [files[i] for i in sorted(rng.permutation(len(files))[:MAX_FILES])]

    # latents and the frames they encode, file by file
    latents, level, centroid = [], [], []
    for f in files:
        clip = audio.load(f.path, rate)[:int(MAX_SECONDS * rate)]
        z = family.encode(model, clip[None])[0]
        described = frame_descriptors(clip, rate, hop, len(z))
        latents.append(z)
        level.append(described["level_db"])
        centroid.append(described["centroid_hz"])
    latents, level, centroid = (np.concatenate(a) for a in (latents, level, centroid))
    correlations = [{"dimension": d, "level": spearman(latents[:, d], level),
                     "centroid": spearman(latents[:, d], centroid)}
                    for d in range(latents.shape[1])]
    pca = pca_dimensions(latents)

    # paths between pairs of loops
    samples = int(seconds * rate)
    long_enough = [f for f in files if f.frames * rate / f.rate >= samples] or files
    samples = min(samples, min(int(f.frames * rate / f.rate) for f in long_enough))
    weights = np.linspace(0.0, 1.0, steps)
    paths, cards = [], []
    for k in range(pairs):
        a, b = rng.choice(len(long_enough), size=2, replace=False)
        sources = [audio.load(long_enough[i].path, rate)[:samples] for i in (a, b)]
        ends = family.encode(model, np.stack(sources))
        clips = path_clips(family, model, ends, weights)[:, :samples]
        described = [{"loudness": metrics.loudness(audio.resample(c, rate, metrics.METRIC_RATE)
                                                   if rate != metrics.METRIC_RATE else c),
                      "centroid": metrics.spectral_centroid(
                          audio.resample(c, rate, metrics.METRIC_RATE)
                          if rate != metrics.METRIC_RATE else c)} for c in clips]
        names = [Path(long_enough[i].path).name for i in (a, b)]
        path = {"from": names[0], "to": names[1], "position": [float(w) for w in weights],
                **{key: [d[key] for d in described] for key in ("loudness", "centroid")},
                "smoothness": {key: smoothness([d[key] for d in described])
                               for key in ("loudness", "centroid")}}
        paths.append(path)
        for i, clip in enumerate(clips):
            wav = f"path{k + 1}_{i + 1}.wav"
            audio.write_wav(out / "audio" / wav, clip, rate)
            spectrogram_png(clip, rate, out / "img" / f"path{k + 1}_{i + 1}.png")
            cards.append(clip_card(f"audio/{wav}", f"img/path{k + 1}_{i + 1}.png",
                                   f"path {k + 1}: {weights[i]:.2f} of the way from "
                                   f"{names[0]} to {names[1]}"))
    _paths_png(paths, out / "img" / "paths.png")

    result = {"run": str(run.path), "family": family.name,
              "checkpoint": run.checkpoint(checkpoint).name, "data": str(data),
              "files": len(files), "latent_steps": int(latents.shape[0]),
              "latent_dimensions": int(latents.shape[1]), "samples_per_step": hop,
              "correlations": correlations, "pca": pca, "paths": paths,
              "mean_smoothness": {key: float(np.mean([p["smoothness"][key] for p in paths]))
                                  for key in ("loudness", "centroid")}}
    atomic_write_text(out / RESULT, json.dumps(result, indent=1, default=_finite))
    _write_page(out, result, cards)
    return result


def _finite(value):
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _paths_png(paths: list[dict], target: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), dpi=80)
    for i, p in enumerate(paths):
        for ax, key, unit in ((axes[0], "loudness", "LUFS"), (axes[1], "centroid", "Hz")):
            ax.plot(p["position"], p[key], marker=".", label=f"path {i + 1}")
            ax.set_xlabel("position on the path")
            ax.set_ylabel(f"{key} ({unit})")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, target)
    plt.close(fig)


def _write_page(out: Path, result: dict, cards: list[str]) -> None:
    def fmt(v):
        return "-" if v is None or not np.isfinite(v) else f"{v:+.2f}"
    strongest = sorted(result["correlations"], key=lambda c: -max(
        abs(np.nan_to_num(c["level"])), abs(np.nan_to_num(c["centroid"]))))
    rows = [[c["dimension"], fmt(c["level"]), fmt(c["centroid"])] for c in strongest]
    pca = result["pca"]["dimensions_for"]
    smooth = [[i + 1, p["from"], p["to"], f"{p['smoothness']['loudness']:.2f}",
               f"{p['smoothness']['centroid']:.2f}"] for i, p in enumerate(result["paths"])]
    body = "\n".join([
        f"<p>Run <code>{result['run']}</code> ({result['family']}, {result['checkpoint']}); "
        f"{result['latent_steps']} latent steps of {result['latent_dimensions']} dimensions "
        f"from {result['files']} files of <code>{result['data']}</code>, one step per "
        f"{result['samples_per_step']} samples.</p>",
        "<h2>PCA fidelity</h2>",
        table(["share of variance"] + list(pca), [["principal directions"] + list(pca.values())]),
        "<h2>Spearman correlation with the frame each step encodes</h2>",
        table(["dimension", "level (dB RMS)", "spectral centroid"], rows),
        "<h2>Paths between loops</h2>",
        '<img src="img/paths.png" alt="loudness and centroid along each path" '
        'style="max-width:100%">',
        "<p>Smoothness: |change from end to end| / sum of |change| from clip to clip (1: "
        "one way only).</p>",
        table(["path", "from", "to", "loudness smoothness", "centroid smoothness"], smooth),
        f"<div class=\"clips\">{''.join(cards)}</div>"])
    atomic_write_text(out / "index.html", page("musicrgan analyze", body))
