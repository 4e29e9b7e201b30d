"""Generation speed of each family at its default config, 16 kHz: our compiled loop (state
carried inside one tf.while_loop, all songs in one batch) against the original approach on
the same model, one `predict` call per step over a sliding window of the previous input.

    python bench/bench_generate.py [--seconds 4] [--n 3] [--baseline-steps 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicrgan.models import get_family
from musicrgan.models.base import GenerationRequest  # noqa: E402

RATE = 16000


def original_loop(family, model, steps: int) -> float:
    """Seconds per generated step of the original: predict on the last window, append."""
    c = family.config
    if family.name == "sample-lstm":
        window = np.zeros((1, c.seq_len, 1), np.float32)
        step = lambda w: model.predict(w, verbose=0)[:, -1]  # noqa: E731
    elif family.name == "fft-lstm":
        window = np.zeros((1, c.seq_len, family.features), np.float32)
        step = lambda w: model.predict(w, verbose=0)[:, -1] if c.mode == "seq2seq" \
            else model.predict(w, verbose=0)  # noqa: E731
    else:
        width = model.generator.input_shape[-1]  # noise, and the beat clock
        window = np.random.default_rng(0).standard_normal((1, c.seq_len, width)).astype("float32")
        step = lambda w: model.generator.predict(w, verbose=0)[:, -1]  # noqa: E731
    for _ in range(3):
        step(window)  # warm-up: tracing is not per-step cost
    t = time.perf_counter()
    for _ in range(steps):
        out = step(window)
        if family.name == "sample-lstm":
            nxt = np.array([[[float(np.argmax(out[0])) / 128 - 1]]], np.float32)
        elif family.name == "fft-lstm":
            nxt = out[:, None, :]
        else:
            nxt = np.random.default_rng().standard_normal((1, 1, width)).astype("float32")
        window = np.concatenate([window[:, 1:], nxt], axis=1)
    return (time.perf_counter() - t) / steps


def samples_per_step(family) -> int:
    return {"sample-lstm": 1, "fft-lstm": getattr(family, "hop", 1),
            "lstm-gan": getattr(family.config, "frame", 1)}[family.name]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--baseline-steps", type=int, default=30)
    args = ap.parse_args()
    results = {}
    for name in ("sample-lstm", "fft-lstm", "lstm-gan"):
        cls = get_family(name)
        family = cls(cls.Config(), RATE)
        model = family.build()
        samples = int(args.seconds * RATE)
        def request(seconds, seed):
            return family.checked(GenerationRequest(n=args.n, seconds=seconds, seed=seed,
                                                    temperature=1.0))
        family.generate(model, request(0.25, 0))  # compile the loop
        t = time.perf_counter()
        family.generate(model, request(args.seconds, 1))
        ours = time.perf_counter() - t
        per_step = original_loop(family, model, args.baseline_steps)
        original_samples_per_s = samples_per_step(family) / per_step  # one stream
        ours_samples_per_s = samples / ours  # per stream, n streams in the batch
        results[name] = {
            "ours_x_realtime_per_stream": round(ours_samples_per_s / RATE, 2),
            "ours_x_realtime_all_streams": round(args.n * ours_samples_per_s / RATE, 2),
            "original_x_realtime": round(original_samples_per_s / RATE, 5),
            "speedup_per_stream": round(ours_samples_per_s / original_samples_per_s, 1),
            "speedup_all_streams": round(args.n * ours_samples_per_s / original_samples_per_s, 1),
        }
        print(name, results[name], flush=True)
    save("generate", {"rate": RATE, "streams": args.n, "seconds": args.seconds, **{
        f"{fam}.{k}": v for fam, r in results.items() for k, v in r.items()}})


if __name__ == "__main__":
    main()
