"""`musicrgan generate`: new audio from a trained run, all songs in one batch."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import audio
from .beats import MAX_BPM, MIN_BPM
from .runs import (BEST, MODEL, RunError, corpus_prime, load_model, load_run_config,
                   make_family, read_state)


def generate_clips(run: Path, *, n: int = 3, seconds: float = 10.0,
                   prime_file: str | None = None, prime_from_corpus: bool = False,
                   window: float | None = None, temperature: float | None = None, seed: int = 0,
                   checkpoint: str = "best", bpm: float | None = None, progress: bool = True):
    """n clips of `seconds` each as an array (n, samples), with the family and a dict saying
    how they were made (checkpoint, priming, wall seconds of the generation loop)."""
    run = Path(run)
    if n < 1:
        raise RunError(f"--n must be at least 1, got {n}")
    if not seconds > 0:
        raise RunError(f"--seconds must be positive, got {seconds}")
    if bpm is not None and not MIN_BPM <= bpm <= MAX_BPM:
        raise RunError(f"--bpm must be between {MIN_BPM:g} and {MAX_BPM:g}, got {bpm:g}")
    run_config = load_run_config(run)
    family = make_family(run_config)
    if bpm is not None and not family.uses_beats:
        raise RunError(f"--bpm needs a model that keeps a beat clock (lstm-gan with beat_clock: "
                       f"true); this {family.name} run has none: leave out --bpm")
    path = run / (BEST if checkpoint == "best" and (run / BEST).exists() else MODEL)
    model = load_model(path, family)
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
    if family.uses_beats:
        made["bpm"] = [round(float(b), 2) for b in family.tempos(model, n, seed, bpm)]
    return np.asarray(clips), family, made


def generate(run: Path, out: Path, *, n: int = 3, seconds: float = 10.0,
             prime_file: str | None = None, prime_from_corpus: bool = False,
             window: float | None = None, temperature: float | None = None, seed: int = 0,
             checkpoint: str = "best", rate: int | None = None, bpm: float | None = None,
             progress: bool = True) -> list[Path]:
    """Write n wavs of `seconds` each into `out` and list them in `out/index.html`;
    returns their paths."""
    run, out = Path(run), Path(out)
    clips, family, made = generate_clips(
        run, n=n, seconds=seconds, prime_file=prime_file, prime_from_corpus=prime_from_corpus,
        window=window, temperature=temperature, seed=seed, checkpoint=checkpoint, bpm=bpm,
        progress=progress)
    out_rate = rate or family.rate
    paths, entries = [], []
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for i, clip in enumerate(clips):
        if out_rate != family.rate:
            clip = audio.resample(clip, family.rate, out_rate)
        path = out / f"{run.name}_{family.name}_seed{seed}_{i + 1}.wav"
        audio.write_wav(path, clip, out_rate)
        paths.append(path)
        entry = {"file": path.name, "created": created, "rate": out_rate, **made}
        if "bpm" in made:
            entry["bpm"] = made["bpm"][i]
        entries.append(entry)
    from .report import update_listing
    update_listing(out, entries)
    return paths
