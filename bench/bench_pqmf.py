"""wave-vae's multi-band (PQMF) front end against the samples themselves (issue 11 §1: "if it
pays on CPU: measure it"), at the same 128x compression, 16 kHz, untrained weights (speed
does not depend on them), in one process: trainable parameters, seconds per training step
through `fit` (batch 8 of 16384 samples, the default), and encoding and decoding 10 s at
batch 1 in x real time. The baseline is the default config (bands 1, strides [4, 4, 4, 2]);
the multi-band configs are bands 16 with strides [2, 2, 2] at 32 and 64 channels. What each
reconstructs after the same training minutes is in docs/hierarchical.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, timed  # noqa: E402

from musicrgan.models import get_family  # noqa: E402

RATE = 16000
CONFIGS = {"samples": {},
           "pqmf16_c32": {"bands": 16, "strides": [2, 2, 2]},
           "pqmf16_c64": {"bands": 16, "strides": [2, 2, 2], "channels": 64}}


def seconds_per_step(model, batch: np.ndarray, steps: int) -> float:
    import tensorflow as tf
    data = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing is not throughput
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - started) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    cls = get_family("wave-vae")
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, (1, int(args.seconds * RATE))).astype(np.float32)
    batch = rng.uniform(-0.5, 0.5, (8, 16384)).astype(np.float32)
    result = {"seconds": args.seconds}
    for name, options in CONFIGS.items():
        family = cls(cls.Config(**options), RATE)
        model = family.build()
        latents = family.encode(model, audio)
        result[f"{name}_parameters"] = int(model.count_params())
        result[f"{name}_step_s"] = round(seconds_per_step(model, batch, args.steps), 3)
        result[f"{name}_encode_x_realtime"] = round(
            args.seconds / timed(lambda: family.encode(model, audio)), 1)
        result[f"{name}_decode_x_realtime"] = round(
            args.seconds / timed(lambda: family.decode(model, latents)), 1)
    for name in list(CONFIGS)[1:]:
        for measure in ("encode_x_realtime", "decode_x_realtime"):
            result[f"{name}_{measure.split('_')[0]}_over_samples"] = round(
                result[f"{name}_{measure}"] / result[f"samples_{measure}"], 2)
        result[f"{name}_steps_per_s_over_samples"] = round(
            result["samples_step_s"] / result[f"{name}_step_s"], 2)
    save("pqmf", result)


if __name__ == "__main__":
    main()
