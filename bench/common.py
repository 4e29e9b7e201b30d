"""Shared by the benchmarks: the machine's description, real recordings, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import musicrgan  # noqa: F401  (quiet TensorFlow start-up before anything imports it)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
REAL = ROOT / "data" / "real"
FETCH = ROOT.parent / "shared" / "corpora" / "fetch-real-audio"


def real_audio(kind: str = "orchestral") -> Path:
    """Real, freely licensed recordings (fetched once from Debian packages, not committed)."""
    folder = REAL / kind
    if not (folder.is_dir() and any(folder.iterdir())):
        subprocess.run([str(FETCH), str(REAL), kind], check=True)
    return folder


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    musicrgan.import_tensorflow()
    versions = {}
    for mod in ("numpy", "soundfile", "tensorflow", "keras"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), **versions}


def save(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def timed(fn, repeat: int = 3) -> float:
    """The best wall time of `repeat` calls of fn, after one untimed call (tracing and
    compiling are not throughput)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def seconds_per_step(model, batch, steps: int) -> float:
    """Seconds per training step of a compiled model through `fit` on one repeated batch,
    after two untimed steps (tracing is not throughput)."""
    import tensorflow as tf
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - started) / steps


def autoencoder_speeds(family_name: str, configs: dict, seconds: float, steps: int,
                       rate: int = 16000) -> dict:
    """For each of an autoencoding family's configs (name: settings; the first is the
    baseline), untrained: parameters, seconds per training step through `fit` (batch 8 of
    16384 samples), encoding and decoding `seconds` of audio at batch 1 in x real time, and
    each other config's ratios over the baseline's."""
    from musicrgan.models import get_family
    cls = get_family(family_name)
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (1, int(seconds * rate))).astype(np.float32)
    batch = rng.uniform(-0.5, 0.5, (8, 16384)).astype(np.float32)
    result = {"seconds": seconds}
    built = {name: cls(cls.Config(**options), rate) for name, options in configs.items()}
    models = {name: family.build() for name, family in built.items()}
    # one config's step time moved by up to 2x between calls in one process: the configs
    # are timed in turn, twice round, the faster of each kept
    step_s = {name: float("inf") for name in configs}
    for _ in range(2):
        for name in configs:
            step_s[name] = min(step_s[name], seconds_per_step(models[name], batch, steps))
    for name, family in built.items():
        model = models[name]
        latents = family.encode(model, audio)
        result[f"{name}_parameters"] = int(model.count_params())
        result[f"{name}_step_s"] = round(step_s[name], 3)
        result[f"{name}_encode_x_realtime"] = round(
            seconds / timed(lambda: family.encode(model, audio)), 1)
        result[f"{name}_decode_x_realtime"] = round(
            seconds / timed(lambda: family.decode(model, latents)), 1)
    base, *others = configs
    for name in others:
        for measure in ("encode", "decode"):
            result[f"{name}_{measure}_over_{base}"] = round(
                result[f"{name}_{measure}_x_realtime"] / result[f"{base}_{measure}_x_realtime"], 2)
        result[f"{name}_steps_per_s_over_{base}"] = round(
            result[f"{base}_step_s"] / result[f"{name}_step_s"], 2)
    return result


def autoencoder_speeds_main(out_name: str, family_name: str, configs: dict) -> None:
    """The command line of a benchmark made of `autoencoder_speeds`: --seconds, --steps."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    save(out_name, autoencoder_speeds(family_name, configs, args.seconds, args.steps))
