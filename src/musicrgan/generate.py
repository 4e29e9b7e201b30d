"""`musicrgan generate`: new audio from a trained run, all songs in one batch."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import audio, mastering
from .beats import MAX_BPM, MIN_BPM
from .runs import (BEST, MODEL, RunError, corpus_prime, load_model, load_run_config,
                   make_family, read_state, writable_folder)


MAX_SONGS, MAX_SECONDS = 1000, 600
# samples generated at once: songs go in groups of at most this many samples (30 s x 16 at
# 16 kHz), so memory stays bounded whatever --n is; each group is written before the next
GROUP_SAMPLES = 16 * 30 * 16000
STAGED = ".staged"  # a finished wav waiting for its group to be listed
# the model of the last call, so a generation in groups loads it once
_loaded: dict = {}


def check_request(n: int, seconds: float, temperature: float | None) -> None:
    """Refuse, before any work, what cannot be done or would not end."""
    if not 1 <= n <= MAX_SONGS:
        raise RunError(f"--n must be between 1 and {MAX_SONGS}, got {n}")
    if not 0 < seconds <= MAX_SECONDS:
        raise RunError(f"--seconds must be above 0 and at most {MAX_SECONDS} (10 minutes) per "
                       f"song, got {seconds:g}")
    if temperature is not None and not 0 <= temperature <= 100:
        raise RunError(f"--temperature must be between 0 and 100, got {temperature:g}")


def generate_clips(run: Path, *, n: int = 3, seconds: float = 10.0,
                   prime_file: str | None = None, prime_from_corpus: bool = False,
                   window: float | None = None, temperature: float | None = None, seed: int = 0,
                   checkpoint: str = "best", bpm: float | None = None,
                   match_loudness: str | float | None = None, progress: bool = True):
    """n clips of `seconds` each as an array (n, samples), with the family and a dict saying
    how they were made (checkpoint, priming, wall seconds of the generation loop).

    match_loudness: None (the model's own level), "corpus" (the median loudness of the
    run's training audio) or a target in LUFS: see mastering.py."""
    run = Path(run)
    check_request(n, seconds, temperature)
    if bpm is not None and not MIN_BPM <= bpm <= MAX_BPM:
        raise RunError(f"--bpm must be between {MIN_BPM:g} and {MAX_BPM:g}, got {bpm:g}")
    run_config = load_run_config(run)
    family = make_family(run_config)
    if bpm is not None and not family.uses_beats:
        raise RunError(f"--bpm needs a model that keeps a beat clock (lstm-gan with beat_clock: "
                       f"true); this {family.name} run has none: leave out --bpm")
    path = run / (BEST if checkpoint == "best" and (run / BEST).exists() else MODEL)
    key = (path.resolve(), path.stat().st_mtime_ns) if path.is_file() else None
    model = _loaded.get(key) or load_model(path, family)
    _loaded.clear(), _loaded.update({key: model})
    samples = int(round(seconds * family.rate))
    if temperature is None:
        temperature = family.default_temperature

    prime = None
    prime_len = int(round(window * family.rate)) if window else family.prime_length()
    if window is not None and window <= 0:
        raise RunError(f"--window must be positive, got {window}")
    if (prime_file or prime_from_corpus) and not family.takes_prime:
        raise RunError(f"{family.name} generates from noise and takes no prime; "
                       "leave out --prime and --prime-from-corpus")
    if prime_file:
        try:
            source = audio.load(prime_file, family.rate)
        except audio.AudioError as exc:
            raise RunError(f"cannot read the priming file {prime_file}: {exc}") from exc
        if source.size < prime_len:
            raise RunError(f"the window of {prime_len / family.rate:.2f} s is longer than the "
                           f"priming file {prime_file} ({source.size / family.rate:.2f} s): "
                           "use a shorter --window")
        prime = np.stack([source[:prime_len]] * n)
    elif prime_from_corpus or family.takes_prime:
        prime = corpus_prime(run_config["data"], family, n, prime_len, seed)

    started = time.perf_counter()
    bar = tqdm(total=samples, unit="sample", unit_scale=True, desc="generate", file=sys.stderr,
               disable=not progress or seconds < 5)
    tempo = {"bpm": bpm} if family.uses_beats else {}
    try:
        clips = family.generate(model, n, samples, prime, temperature, seed,
                                progress=lambda k: bar.update(min(k, bar.total - bar.n)), **tempo)
    finally:
        bar.close()
    made = {"run": str(run), "family": family.name, "checkpoint": path.name,
            "epochs": read_state(run)["epochs_done"], "seconds": seconds,
            "temperature": temperature, "seed": seed,
            "prime": prime_file or ("corpus" if prime is not None else None),
            "window": prime_len / family.rate if prime is not None else None,
            "generation_seconds": round(time.perf_counter() - started, 3),
            # every weight of the model (for a GAN: generator and discriminator)
            "parameters": int(model.count_params())}
    if match_loudness is not None:
        made["loudness_target"] = round(loudness_target(run, run_config, match_loudness), 2)
        clips = np.stack([mastering.match_loudness(c, family.rate, made["loudness_target"])
                          for c in clips])
    if family.uses_beats:
        made["bpm"] = [round(float(b), 2) for b in family.tempos(model, n, seed, bpm)]
    return np.asarray(clips), family, made


def loudness_target(run: Path, run_config: dict, match_loudness: str | float) -> float:
    """The LUFS that --match-loudness asks for: a number, or the run's corpus's."""
    if match_loudness != "corpus":
        try:
            target = float(match_loudness)
        except ValueError:
            raise RunError(f"--match-loudness takes a loudness in LUFS (e.g. -12) or nothing "
                           f"for the corpus's, got {match_loudness!r}") from None
        if not -70 < target < 0:
            raise RunError(f"--match-loudness must be between -70 and 0 LUFS, got {target:g}")
        return target
    if not Path(run_config["data"]).is_dir():
        raise RunError(f"--match-loudness needs the run's corpus to measure, and "
                       f"{run_config['data']} is gone: give a target, e.g. --match-loudness -12")
    return mastering.corpus_loudness(run, run_config["data"])


def generate(run: Path, out: Path, *, n: int = 3, seconds: float = 10.0,
             prime_file: str | None = None, prime_from_corpus: bool = False,
             window: float | None = None, temperature: float | None = None, seed: int = 0,
             checkpoint: str = "best", rate: int | None = None, bpm: float | None = None,
             match_loudness: str | float | None = None, progress: bool = True) -> list[Path]:
    """Write n wavs of `seconds` each into `out` and list them in `out/index.html`;
    returns their paths.

    Songs are generated in groups (GROUP_SAMPLES), each group written and listed before the
    next, so memory stays bounded. A group's wavs are staged under hidden names, listed, then
    renamed into place: a killed run leaves no wav that index.json does not describe, and the
    next run finishes the renames of a listed group (or discards an unlisted one). A new batch never overwrites earlier files: its names get a batch number
    where the plain names are taken. Group k > 0 uses a seed derived from (seed, k)."""
    run, out = Path(run), Path(out)
    check_request(n, seconds, temperature)
    family = make_family(load_run_config(run))
    writable_folder(out, "--out")
    _finish_staged(out)
    stem = _free_stem(out, f"{run.name}_{family.name}_seed{seed}", n)
    group = max(1, min(n, GROUP_SAMPLES // max(1, int(seconds * family.rate))))
    paths = []
    from .report import update_listing
    for first in range(0, n, group):
        count = min(group, n - first)
        group_seed = seed if first == 0 else (seed * 1_000_003 + first) % 2**31
        clips, family, made = generate_clips(
            run, n=count, seconds=seconds, prime_file=prime_file,
            prime_from_corpus=prime_from_corpus, window=window, temperature=temperature,
            seed=group_seed, checkpoint=checkpoint, bpm=bpm, match_loudness=match_loudness,
            progress=progress)
        out_rate = rate or family.rate
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entries, staged = [], {}
        for i, clip in enumerate(clips):
            if out_rate != family.rate:
                clip = audio.resample(clip, family.rate, out_rate)
            path = out / f"{stem}_{first + i + 1}.wav"
            staged[path.name] = _staged(path)
            audio.write_wav(staged[path.name], clip, out_rate)
            paths.append(path)
            entry = {"file": path.name, "created": created, "rate": out_rate, **made,
                     "seed": seed, "group_seed": group_seed}
            if "bpm" in made:
                entry["bpm"] = made["bpm"][i]
            entries.append(entry)
        update_listing(out, entries, sources=staged)
        for name, source in staged.items():
            os.replace(source, out / name)
        if n > group and progress:
            print(f"{first + count} of {n} songs written", file=sys.stderr)
    return paths


def _staged(path: Path) -> Path:
    return path.with_name(f".{path.name}{STAGED}")


def _finish_staged(out: Path) -> None:
    """Clean up after a killed generate: half-written temporaries go; a staged wav that
    index.json already lists is renamed into place (its group was complete), others go."""
    from .report import LISTING
    for leftover in out.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    staged = list(out.glob(f".*.wav{STAGED}"))
    if not staged:
        return
    try:
        listed = {c["file"] for c in json.loads((out / LISTING).read_text())["clips"]}
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
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
