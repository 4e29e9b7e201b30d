"""`musicrgan generate`: new audio from a trained run, all songs in one batch."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import audio, mastering
from .models.base import ContinuesAudio, GenerationRequest, Generates, RequestError
from .data import CorpusError, WindowSource
from .runs import Run, RunError, writable_folder


# samples generated at once: songs go in groups of at most this many samples (30 s x 16 at
# 16 kHz), so memory stays bounded whatever the request's n is; each group is written
# before the next
GROUP_SAMPLES = 16 * 30 * 16000
log = logging.getLogger("musicrgan")
STAGED = ".staged"  # a finished wav waiting for its group to be listed


def _open(run: Run | Path) -> Run:
    return run if isinstance(run, Run) else Run(run)


def _generating_family(run: Run) -> Generates:
    if not isinstance(run.family, Generates):
        raise RunError(f"{run.family.name} does not generate audio (it encodes and decodes): "
                       "reconstruct with it, or train a generating family on top of it")
    return run.family


def priming_audio(run: Run, n: int, seed: int, prime_file: str | None = None,
                  prime_from_corpus: bool = False, window: float | None = None):
    """What the songs continue, (n, samples) at the family's rate: the start of prime_file,
    or windows of the run's corpus; None for families that generate from noise."""
    family = run.family
    if window is not None and window <= 0:
        raise RequestError("window", f"must be positive, got {window}")
    if not isinstance(family, ContinuesAudio):
        if prime_file or prime_from_corpus:
            raise RequestError("prime", f"is not taken by {family.name}, which generates "
                                        "from noise")
        return None
    length = int(round(window * family.rate)) if window else family.prime_length()
    if not prime_file:
        if prime_from_corpus or family.needs_prime:
            return corpus_prime(run.data, family, n, length, seed)
        return None
    try:
        source = audio.load(prime_file, family.rate)
    except audio.AudioError as exc:
        raise RequestError("prime", f"{prime_file} cannot be read: {exc}") from exc
    if source.size < length:
        raise RequestError("window", f"of {length / family.rate:.2f} s is longer than the "
                                     f"priming file {prime_file} "
                                     f"({source.size / family.rate:.2f} s): use a shorter one")
    return np.stack([source[:length]] * n)


def generate_clips(run: Run | Path, request: GenerationRequest, *,
                   prime_file: str | None = None, prime_from_corpus: bool = False,
                   window: float | None = None, checkpoint: str = "best",
                   match_loudness: str | float | None = None, progress: bool = True):
    """The request's clips as an array (n, samples), with the family and a dict saying how
    they were made (checkpoint, priming, wall seconds of the generation loop, and what the
    family records per clip, such as each one's tempo).

    match_loudness: None (the model's own level), "corpus" (the median loudness of the
    run's training audio) or a target in LUFS: see mastering.py."""
    run = _open(run)
    family = _generating_family(run)
    request = family.checked(request)
    target = None if match_loudness is None else loudness_target(run, match_loudness)
    model = run.model(checkpoint)
    if request.prime is None:
        request.prime = priming_audio(run, request.n, request.seed, prime_file,
                                      prime_from_corpus, window)
    samples = request.samples(family.rate)
    started = time.perf_counter()
    bar = tqdm(total=samples, unit="sample", unit_scale=True, desc="generate", file=sys.stderr,
               disable=not progress or request.seconds < 5)
    try:
        clips = family.generate(model, request,
                                progress=lambda k: bar.update(min(k, bar.total - bar.n)))
    finally:
        bar.close()
    prime = request.prime
    made = {"run": str(run.path), "family": family.name,
            "checkpoint": run.checkpoint(checkpoint).name,
            "epochs": run.state["epochs_done"], "seconds": request.seconds,
            "temperature": request.temperature, "seed": request.seed,
            "prime": prime_file or ("corpus" if prime is not None else None),
            "window": prime.shape[1] / family.rate if prime is not None else None,
            "generation_seconds": round(time.perf_counter() - started, 3),
            # every weight of the model (for a GAN: generator and discriminator)
            "parameters": int(model.count_params()), **request.controls}
    if target is not None:
        made["loudness_target"] = round(target, 2)
        clips = np.stack([mastering.match_loudness(c, family.rate, target) for c in clips])
    made.update(family.describe(model, request))
    return np.asarray(clips), family, made


def loudness_target(run: Run, match_loudness: str | float) -> float:
    """The LUFS that match_loudness asks for: a number, or the run's corpus's ("corpus")."""
    if match_loudness != "corpus":
        try:
            target = float(match_loudness)
        except ValueError:
            raise RequestError("match_loudness", f"takes a loudness in LUFS (e.g. -12), or "
                                                 f"nothing for the corpus's; got "
                                                 f"{match_loudness!r}") from None
        if not -70 < target < 0:
            raise RequestError("match_loudness", f"must be between -70 and 0 LUFS, got "
                                                 f"{target:g}")
        return target
    if not Path(run.data).is_dir():
        raise RequestError("match_loudness", f"needs the run's corpus to measure, and "
                                             f"{run.data} is gone: give a target in LUFS, "
                                             "e.g. -12")
    return mastering.corpus_loudness(run.path, run.data)


def generate(run: Run | Path, out: Path, request: GenerationRequest, *,
             prime_file: str | None = None, prime_from_corpus: bool = False,
             window: float | None = None, checkpoint: str = "best", rate: int | None = None,
             match_loudness: str | float | None = None, progress: bool = True) -> list[Path]:
    """Write the request's songs as wavs into `out` and list them in `out/index.html`;
    returns their paths.

    Songs are generated in groups (GROUP_SAMPLES), each group written and listed before the
    next, so memory stays bounded. A group's wavs are staged under hidden names, listed, then
    renamed into place: a killed run leaves no wav that index.json does not describe, and the
    next run finishes the renames of a listed group (or discards an unlisted one). A new
    batch never overwrites earlier files: its names get a batch number where the plain names
    are taken. Group k > 0 uses a seed derived from (seed, k)."""
    run, out = _open(run), Path(out)
    family = _generating_family(run)
    request = family.checked(request)
    if match_loudness is not None:
        loudness_target(run, match_loudness)  # a bad target is refused before any work
    writable_folder(out, "output folder")
    _finish_staged(out)
    n, seconds, seed = request.n, request.seconds, request.seed
    stem = _free_stem(out, f"{run.path.name}_{family.name}_seed{seed}", n)
    group = max(1, min(n, GROUP_SAMPLES // max(1, int(seconds * family.rate))))
    paths = []
    for first in range(0, n, group):
        count = min(group, n - first)
        group_seed = seed if first == 0 else (seed * 1_000_003 + first) % 2**31
        clips, family, made = generate_clips(
            run, dataclasses.replace(request, n=count, seed=group_seed), prime_file=prime_file,
            prime_from_corpus=prime_from_corpus, window=window, checkpoint=checkpoint,
            match_loudness=match_loudness, progress=progress)
        paths += _write_listed(out, [f"{stem}_{first + i + 1}.wav" for i in range(count)],
                               clips, family.rate, rate,
                               made | {"seed": seed, "group_seed": group_seed})
        if n > group and progress:
            log.info(f"{first + count} of {n} songs written")
    return paths


def _write_listed(out: Path, names: list[str], clips, family_rate: int, rate: int | None,
                  made: dict) -> list[Path]:
    """Write clips as wavs named `names` into out and list them in its index: staged under
    hidden names, listed, then renamed into place (see `generate`). What `made` holds as a
    list of one value per clip goes to each clip's entry."""
    from .report import update_listing
    out_rate = rate or family_rate
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries, staged, paths = [], {}, []
    for i, (name, clip) in enumerate(zip(names, clips)):
        if out_rate != family_rate:
            clip = audio.resample(clip, family_rate, out_rate)
        path = out / name
        staged[name] = _staged(path)
        audio.write_wav(staged[name], clip, out_rate)
        paths.append(path)
        entries.append({"file": name, "created": created, "rate": out_rate,
                        **{k: v[i] if isinstance(v, list) else v for k, v in made.items()}})
    update_listing(out, entries, sources=staged)
    for name, source in staged.items():
        os.replace(source, out / name)
    return paths


def continuous_encoder(family) -> None:
    """RequestError("between", ...) unless the family encodes into continuous latents."""
    from .models.base import Encodes
    if not isinstance(family, Encodes) or family.latent_channels() is None:
        raise RequestError("between", f"needs a run whose family encodes audio into "
                                      f"continuous latents (wave-vae, latent-vae, a Gaussian "
                                      f"spec-vae); {family.name} "
                           + ("does not encode" if not isinstance(family, Encodes)
                              else "encodes into codes of a codebook, which have no path "
                                   "between them"))


def path_clips(family, model, ends: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Audio decoded at each weight w of the straight path (1 - w) * ends[0] + w * ends[1]
    between two latent sequences (2, steps, channels)."""
    w = np.asarray(weights, np.float32)[:, None, None]
    return np.clip(family.decode(model, (1.0 - w) * ends[0][None] + w * ends[1][None]),
                   -1.0, 1.0)


def interpolate(run: Run | Path, out: Path, first: str, second: str, steps: int, *,
                checkpoint: str = "best", rate: int | None = None) -> list[Path]:
    """Write `steps` clips along the straight path between the latents of two files (the
    first and last clips: their reconstructions), for a family that encodes into continuous
    latents; the clips are as long as the shorter file (at most 10 minutes)."""
    from .models.base import MAX_SECONDS, MAX_SONGS
    run, out = _open(run), Path(out)
    family = run.family
    continuous_encoder(family)
    if not 2 <= steps <= MAX_SONGS:
        raise RequestError("steps", f"must be between 2 and {MAX_SONGS}, got {steps}")
    model = run.model(checkpoint)
    sources = []
    for path in (first, second):
        try:
            sources.append(audio.load(path, family.rate))
        except audio.AudioError as exc:
            raise RequestError("between", f"{path} cannot be read: {exc}") from exc
    samples = min(min(s.size for s in sources), MAX_SECONDS * family.rate)
    ends = family.encode(model, np.stack([s[:samples] for s in sources]))
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    writable_folder(out, "output folder")
    _finish_staged(out)
    stem = _free_stem(out, f"{run.path.name}_{Path(first).stem}_to_{Path(second).stem}", steps)
    made = {"run": str(run.path), "family": family.name,
            "checkpoint": run.checkpoint(checkpoint).name, "epochs": run.state["epochs_done"],
            "seconds": round(samples / family.rate, 3), "between": {"from": first, "to": second}}
    group, paths = max(1, GROUP_SAMPLES // samples), []  # memory bounded as in generate
    for start in range(0, steps, group):
        w = weights[start:start + group]
        clips = path_clips(family, model, ends, w)[:, :samples]
        paths += _write_listed(out, [f"{stem}_{start + i + 1}.wav" for i in range(len(w))],
                               clips, family.rate, rate,
                               made | {"position": [round(float(x), 4) for x in w]})
    return paths


def _staged(path: Path) -> Path:
    return path.with_name(f".{path.name}{STAGED}")


def _finish_staged(out: Path) -> None:
    """Clean up after a killed generate: half-written temporaries go; a staged wav that
    index.json already lists is renamed into place (its group was complete), others go."""
    from .report import read_listing
    for leftover in out.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    listed = {c["file"] for c in read_listing(out)}
    staged = list(out.glob(f".*.wav{STAGED}"))
    for source in staged:
        name = source.name[1:-len(STAGED)]
        if name in listed and not (out / name).exists():
            os.replace(source, out / name)
        else:
            source.unlink(missing_ok=True)


def _free_stem(out: Path, stem: str, n: int) -> str:
    """`stem`, or `stem-2`, `stem-3`...: the first whose n file names are all free."""
    candidate, batch = stem, 1
    while any((out / f"{candidate}_{i}.wav").exists() for i in range(1, n + 1)):
        batch += 1
        candidate = f"{stem}-{batch}"
    return candidate


def corpus_prime(data: str, family, n: int, length: int, seed: int) -> np.ndarray:
    """n priming windows of `length` samples from the corpus's test split (train if none)."""
    for split in ("test", "train"):
        try:
            source = WindowSource(data, split, length)
        except CorpusError:
            continue
        windows = source.random_windows(seed)
        return np.stack([next(windows) for _ in range(n)])
    raise RequestError("window", f"of {length} samples is longer than every file of the "
                                 f"corpus {data}, to prime with: prime with a file, or use a "
                                 "shorter window")
