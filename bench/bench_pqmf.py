"""wave-vae's multi-band (PQMF) front end against the samples themselves (issue 11 §1: "if it
pays on CPU: measure it"), at the same 128x compression, 16 kHz, untrained weights (speed
does not depend on them), in one process: trainable parameters, seconds per training step
through `fit` (batch 8 of 16384 samples, the default), and encoding and decoding 10 s at
batch 1 in x real time. The baseline is the default config before 2026-12-07 (bands 1,
32 channels, strides [4, 4, 4, 2], 16 latent channels, the transposed-convolution decoder,
which the filter bank needs); the multi-band configs are bands 16 with strides [2, 2, 2]
at 32 and 64 channels, the same decoder; `default` is today's default (vqvae's network on
the samples, the istft decoder). What each reconstructs after the same training minutes
is in docs/hierarchical.md."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import autoencoder_speeds_main  # noqa: E402

CONV = {"decoder": "conv", "channels": 32, "latent_dim": 16, "waveform_weight": 0.0,
        "convergence_weight": 0.0, "moments_weight": 0.0}
CONFIGS = {"samples": {**CONV, "strides": [4, 4, 4, 2]},
           "pqmf16_c32": {**CONV, "bands": 16, "strides": [2, 2, 2]},
           "pqmf16_c64": {**CONV, "bands": 16, "strides": [2, 2, 2], "channels": 64},
           "default": {}}


if __name__ == "__main__":
    autoencoder_speeds_main("pqmf", "wave-vae", CONFIGS)
