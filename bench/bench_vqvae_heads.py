"""vqvae's default (`decoder: istft`, Vocos's head at the code rate, with the spectral
convergence in its loss) against the baseline, the default before 2026-12-06 (`decoder:
conv`, transposed convolutions up to the sample rate, no convergence term), 64x, 16 kHz,
untrained weights (speed does not depend on them), in one process: parameters, seconds per
training step through `fit` (batch 8 of 16384 samples), encoding and decoding 10 s at batch
1 in x real time, and the default's ratios over the baseline.
What each reconstructs after the same training minutes is in docs/compare.md."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import autoencoder_speeds_main  # noqa: E402

# both at 64x, the default of that day (256x since the evening: docs/compare.md)
AT_64X = {"strides": [4, 4, 4], "istft_fft": 256, "moments_weight": 0.0}
CONFIGS = {"before": {**AT_64X, "decoder": "conv", "convergence_weight": 0.0},
           "default": AT_64X}


if __name__ == "__main__":
    autoencoder_speeds_main("vqvae_heads", "vqvae", CONFIGS)
