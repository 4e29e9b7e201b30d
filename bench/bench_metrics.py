"""Tempo estimation accuracy of `musicrgan evaluate`'s tempo descriptor on labelled loops of
the built-in corpus, against the usual approach of the field (librosa's default: the
autocorrelation of onset strength weighted by a log-normal prior one octave wide, no
double-period term) run on the same onset envelopes in the same process; plus how fast
descriptors are computed.

    python bench/bench_metrics.py [--loops 64]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # seed 7: not the demo corpus's seed, so the tempo prior was not tuned on these loops
        entries = synth_corpus(Path(tmp), loops=args.loops, seconds=8, rate=16000, seed=7,
                               test_fraction=0.0, progress=False)
        clips = [(audio.load(Path(tmp) / e["path"], 16000), e["bpm"]) for e in entries]

    def accuracy(**options):
        hits = [abs(metrics.tempo(x, **options)[0] / bpm - 1) < 0.02 for x, bpm in clips]
        return float(np.mean(hits))

    ours = accuracy()
    baseline = accuracy(prior_octaves=1.0, harmonics=1)
    started = time.perf_counter()
    for x, _ in clips:
        metrics.descriptors(x)
    seconds = time.perf_counter() - started
    save("metrics", {
        "loops": len(clips), "loop_seconds": 8,
        "tempo_within_2pct_ours": round(ours, 3),
        "tempo_within_2pct_baseline": round(baseline, 3),
        "accuracy_ratio": round(ours / baseline, 2) if baseline else None,
        "descriptors_x_realtime": round(len(clips) * 8 / seconds, 1),
    })


if __name__ == "__main__":
    main()
