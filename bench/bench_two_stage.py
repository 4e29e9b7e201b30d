"""Compress-then-generate speed at the default configs, 16 kHz, on this machine's CPU
(issue 10 §7): vqvae decoding and encoding (x real time at batch 1, and against the same
networks called eagerly), and code-prior
sampling plus decoding per stream, against the baseline a sampler without a key/value
cache would be (the whole prefix through the model for every new code), measured in the
same process on the same model. Untrained weights: speed does not depend on them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, timed  # noqa: E402

from musicrgan.models import get_family  # noqa: E402
from musicrgan.models.base import GenerationRequest  # noqa: E402

RATE = 16000



def uncached_codes_per_second(model, context: int, steps: int) -> float:
    """The baseline: each new code runs the whole prefix (up to the context) through the
    model, as a sampler without a cache does."""
    import keras
    tokens = np.zeros((1, context), np.int32)
    forward = keras.ops.convert_to_tensor
    # a prior with the beat clock also takes [tempo, beat position] per song
    beats = {"beats": forward(np.array([[120.0, 0.0]], np.float32))} \
        if len(model.inputs) > 1 else {}

    def run():
        for i in range(steps):
            prefix = forward(tokens[:, : (context // 2 + i) % context + 1])
            model({"tokens": prefix, **beats} if beats else prefix, training=False)
    run()  # a trace per prefix length: all of them, first
    started = time.perf_counter()
    run()
    return steps / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    samples = int(args.seconds * RATE)
    cls = get_family("vqvae")
    vq = cls(cls.Config(), RATE)
    vq_model = vq.build()
    audio = (np.random.default_rng(0).uniform(-0.5, 0.5, (1, samples))).astype(np.float32)
    codes = vq.encode(vq_model, audio)
    encode_s = timed(lambda: vq.encode(vq_model, audio))
    decode_s = timed(lambda: vq.decode(vq_model, codes))
    # the baseline: the same networks called eagerly (what vqvae did before its traced graphs)
    eager_encode_s = timed(lambda: np.asarray(vq_model.quantizer.indices(
        vq_model.encoder(audio, training=False))))
    eager_decode_s = timed(lambda: np.asarray(vq_model.decoder(
        vq_model.quantizer.lookup(codes), training=False)))

    cls = get_family("code-prior")
    prior = cls(cls.Config(), RATE)
    prior.attach(vq, vq_model)
    prior_model = prior.build()
    result = {"seconds": args.seconds, "vqvae_parameters": int(vq_model.count_params()),
              "code_prior_parameters": int(prior_model.count_params()),
              "vqvae_encode_x_realtime": round(args.seconds / encode_s, 1),
              "vqvae_decode_x_realtime": round(args.seconds / decode_s, 1),
              "vqvae_encode_over_eager": round(eager_encode_s / encode_s, 2),
              "vqvae_decode_over_eager": round(eager_decode_s / decode_s, 2)}
    for n in (1, 4):
        request = prior.checked(GenerationRequest(n=n, seconds=args.seconds, seed=1))
        wall = timed(lambda: prior.generate(prior_model, request), repeat=2)
        result[f"code_prior_generate_x_realtime_per_stream_n{n}"] = round(args.seconds / wall, 2)
    codes_per_s = codes.shape[1] / args.seconds
    cached = (result["code_prior_generate_x_realtime_per_stream_n1"] * codes_per_s)
    baseline = uncached_codes_per_second(prior_model, prior.config.context, 64)
    result["codes_per_s_cached_n1_with_decoding"] = round(cached, 1)
    result["codes_per_s_uncached_baseline"] = round(baseline, 1)
    result["cached_over_uncached"] = round(cached / baseline, 1)
    save("two_stage", result)


if __name__ == "__main__":
    main()
