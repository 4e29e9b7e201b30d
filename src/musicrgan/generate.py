"""`musicrgan generate`: new audio from a trained run, all songs in one batch."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import audio
from .runs import (BEST, MODEL, RunError, corpus_prime, load_model, load_run_config,
                   make_family, read_state)


def generate_clips(run: Path, *, n: int = 3, seconds: float = 10.0,
                   prime_file: str | None = None, prime_from_corpus: bool = False,
                   window: float | None = None, temperature: float | None = None, seed: int = 0,
                   checkpoint: str = "best", progress: bool = True):
    """n clips of `seconds` each as an array (n, samples), with the family and a dict saying
    how they were made (checkpoint, priming, wall seconds of the generation loop)."""
    run = Path(run)
    if n < 1:
        raise RunError(f"--n must be at least 1, got {n}")
    if not seconds > 0:
        raise RunError(f"--seconds must be positive, got {seconds}")
    run_config = load_run_config(run)
    family = make_family(run_config)
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
    try:
        clips = family.generate(model, n, samples, prime, temperature, seed,
                                progress=lambda k: bar.update(min(k, bar.total - bar.n)))
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
    return np.asarray(clips), family, made


def generate(run: Path, out: Path, *, n: int = 3, seconds: float = 10.0,
             prime_file: str | None = None, prime_from_corpus: bool = False,
             window: float | None = None, temperature: float | None = None, seed: int = 0,
             checkpoint: str = "best", rate: int | None = None,
             progress: bool = True) -> list[Path]:
    """Write n wavs of `seconds` each into `out` and list them in `out/index.html`;
    returns their paths."""
    run, out = Path(run), Path(out)
    clips, family, made = generate_clips(
        run, n=n, seconds=seconds, prime_file=prime_file, prime_from_corpus=prime_from_corpus,
        window=window, temperature=temperature, seed=seed, checkpoint=checkpoint,
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
        entries.append({"file": path.name, "created": created, "rate": out_rate, **made})
    from .report import update_listing
    update_listing(out, entries)
    return paths
