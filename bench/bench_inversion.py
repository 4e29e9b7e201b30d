"""spec-vae's way back from log-mel frames to audio (issue 10 §4), on the demo corpus's
test split (`musicrgan synth --loops 48 --seconds 8 --rate 16000 --test-fraction 0.25
--seed 0`, 12 loops of 8 s): each loop's own frames inverted, then compared with the loop
(Fréchet distance of the log-mel frames as `evaluate` computes it, and the frames' mean
absolute error). Ours: non-negative least-squares magnitudes and fast Griffin-Lim (momentum
0.99). Baseline, same process, same frames and iteration count: the filterbank's
pseudo-inverse clipped at zero and Griffin & Lim's 1984 algorithm (what spec-vae did before
2026-11-30).

    python bench/bench_inversion.py [--iterations 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicrgan import audio, metrics  # noqa: E402
from musicrgan.corpus.synth import synth_corpus  # noqa: E402
from musicrgan.models.spec_vae import SpecVAEConfig  # noqa: E402
from musicrgan.modules.spectral import LogMel, griffin_lim  # noqa: E402

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=SpecVAEConfig.griffin_lim)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        entries = synth_corpus(Path(tmp), loops=48, seconds=8, rate=RATE, seed=0,
                               test_fraction=0.25, progress=False)
        clips = [audio.load(Path(tmp) / e["path"], RATE) for e in entries
                 if e["path"].startswith("test")]
    c = SpecVAEConfig()
    log_mel = LogMel(RATE, c.n_fft, c.hop, c.mels)
    length = min(len(x) for x in clips) // c.hop * c.hop
    originals = np.stack([x[:length] for x in clips]).astype("float32")
    frames = np.asarray(log_mel(originals))
    clipped = np.maximum((np.exp(frames) - 1e-5) @ log_mel.pseudo_inverse, 0.0)
    result = {"clips": len(clips), "seconds_each": length / RATE,
              "iterations": args.iterations}
    for name, options in (("ours", {}), ("baseline", {"momentum": 0.0, "magnitude": clipped})):
        griffin_lim(log_mel, frames[:1], 1, **{k: v[:1] if k == "magnitude" else v
                                               for k, v in options.items()})  # warm up
        started = time.perf_counter()
        inverted = np.asarray(griffin_lim(log_mel, frames, args.iterations, **options))
        seconds = time.perf_counter() - started
        result[f"{name}_frechet"] = round(metrics.clips_frechet_distance(
            list(inverted), list(originals)), 2)
        result[f"{name}_log_mel_error"] = round(float(np.abs(
            np.asarray(log_mel(inverted)) - frames).mean()), 4)
        result[f"{name}_x_realtime"] = round(len(clips) * length / RATE / seconds, 1)
    result["frechet_baseline_over_ours"] = round(result["baseline_frechet"]
                                                 / result["ours_frechet"], 2)
    result["speed_ours_over_baseline"] = round(result["ours_x_realtime"]
                                               / result["baseline_x_realtime"], 2)
    save("inversion", result)


if __name__ == "__main__":
    main()
