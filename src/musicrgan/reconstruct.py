"""`musicrgan reconstruct RUN FILE... --out DIR`: what an autoencoder run keeps of a sound.
Each file is encoded and decoded; DIR gets the original (at the run's rate) and the
reconstruction side by side on DIR/index.html with their spectrograms, and the numbers
(multi-resolution STFT distance, mel distance, SI-SDR, ViSQOL) in DIR/reconstruct.json."""

from __future__ import annotations

import json
from pathlib import Path

from . import audio, metrics
from .audio import atomic_write_text
from .models.base import MAX_SECONDS, Encodes, RequestError
from .report import clip_card, page, spectrogram_png, table
from .runs import Run, RunError, writable_folder

RESULT = "reconstruct.json"
VISQOL_SECONDS = 2.0


def reconstruct(run: Run | Path, files: list[str], out: Path, checkpoint: str = "best") -> dict:
    """{file name: metrics} for each file, written with the audio and the page into out."""
    run = run if isinstance(run, Run) else Run(run)
    family = run.family
    if not isinstance(family, Encodes):
        raise RunError(f"{family.name} does not encode audio: reconstruct needs an "
                       "autoencoder run (vqvae, spec-vae)")
    sources = []
    for name in files:  # every file is read before anything is written
        try:
            clip = audio.load(name, family.rate)
        except audio.AudioError as exc:
            raise RequestError("files", f"{name} cannot be read: {exc}") from exc
        if clip.size > MAX_SECONDS * family.rate:
            raise RequestError("files", f"{name} is longer than {MAX_SECONDS} s: cut it first")
        if clip.size == 0:
            raise RequestError("files", f"{name} holds no audio")
        sources.append((unique_name(Path(name), [n for n, _ in sources]), clip))
    out = writable_folder(out, "output folder")
    model = run.model(checkpoint)
    results, cards, rows = {}, [], []
    for label, clip in sources:
        decoded = family.reconstruct(model, clip[None])[0]
        # ViSQOL needs about 2 s to compare (its patches); shorter files get none
        long_enough = clip.size >= VISQOL_SECONDS * family.rate
        scores = {"visqol": None, **metrics.reconstruction_metrics(
            clip, decoded, family.rate, with_visqol=long_enough)}
        stem = label.stem
        for kind, x in (("original", clip), ("reconstruction", decoded)):
            audio.write_wav(out / f"{stem}_{kind}.wav", x, family.rate)
            spectrogram_png(x, family.rate, out / "img" / f"{stem}_{kind}.png")
            cards.append(clip_card(f"{stem}_{kind}.wav", f"img/{stem}_{kind}.png",
                                   f"{label.name}: {kind}"))
        results[label.name] = {k: None if v is None else round(float(v), 4)
                                for k, v in scores.items()}
        rows.append([label.name] + ["-" if v is None else f"{v:.3g}"
                                     for v in results[label.name].values()])
    header = ["file"] + list(next(iter(results.values())))
    body = (f"<p>Each file beside its reconstruction by <code>{run.path}</code> "
            f"({family.name}, {run.state['epochs_done']} epochs, "
            f"{run.checkpoint(checkpoint).name}).</p>" + table(header, rows)
            + f"<div class=\"clips\">{''.join(cards)}</div>")
    atomic_write_text(out / "index.html", page(f"musicrgan: reconstructions by {run.path.name}",
                                               body))
    atomic_write_text(out / RESULT, json.dumps(
        {"run": str(run.path), "checkpoint": run.checkpoint(checkpoint).name,
         "files": results}, indent=1))
    return results


def unique_name(path: Path, taken: list[Path]) -> Path:
    """The file's name, or NAME-2, NAME-3... if an earlier file of the call has it (two
    files of one name in different folders must not overwrite each other's outputs; the
    studio's uploads use it too)."""
    names, name, k = {p.name for p in taken}, Path(path.name), 1
    while name.name in names:
        k += 1
        name = Path(f"{path.stem}-{k}{path.suffix}")
    return name
