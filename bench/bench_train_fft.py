"""fft-lstm training throughput (windows/s): our streaming pipeline against the original
generator (every example reads its whole file and recomputes the FFT of every block in a
Python loop, then copies the sequence out with Python loops), same model, same corpus.

    python bench/bench_train_fft.py [--steps 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, real_audio, save  # noqa: E402

from musicrgan import import_tensorflow  # noqa: E402
from musicrgan.data import corpus_files, window_dataset  # noqa: E402
from musicrgan.models import get_family  # noqa: E402

tf = import_tensorflow()


def original_generator(paths, block, seq_len, batch):
    while True:
        xs, ys = [], []
        for _ in range(batch):
            audio, _ = sf.read(random.choice(paths), dtype="float32")
            blocks = []
            for i in range(0, len(audio) - block + 1, block):
                spectrum = np.fft.rfft(audio[i:i + block])
                blocks.append(np.concatenate([spectrum.real, spectrum.imag]) / np.sqrt(block))
            start = random.randrange(0, len(blocks) - seq_len - 1)
            seq = [[float(v) for v in blocks[j]] for j in range(start, start + seq_len + 1)]
            xs.append(seq[:-1])
            ys.append(seq[1:])
        yield np.array(xs, np.float32), np.array(ys, np.float32)


def timed_fit(model, data, steps):
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # tracing is not throughput
    t = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    corpus = OUT / "stream" / "x1"
    if not (corpus / "manifest.jsonl").exists():
        from musicrgan.corpus.convert import convert
        convert([real_audio("orchestral")], corpus, rate=16000, test_fraction=0.0, progress=False)
    cls = get_family("fft-lstm")
    family = cls(cls.Config(overlap=False), 16000)  # the original had no overlap
    c = family.config
    model = family.build()
    paths = [f.path for f in corpus_files(corpus, "train")]

    spec = (tf.TensorSpec((None, c.seq_len, family.features), tf.float32),) * 2
    original = tf.data.Dataset.from_generator(
        lambda: original_generator(paths, c.block, c.seq_len, c.batch_size), output_signature=spec)
    ours = window_dataset(corpus, "train", family.window(), c.batch_size, steps=10**6, seed=0)
    ours = ours.map(family.examples, num_parallel_calls=tf.data.AUTOTUNE)
    t_original = timed_fit(model, original, args.steps)
    t_ours = timed_fit(model, ours, args.steps)
    windows = args.steps * c.batch_size
    save("train_fft", {
        "block": c.block, "seq_len": c.seq_len, "hidden": c.hidden, "batch": c.batch_size,
        "steps": args.steps, "corpus_files": len(paths),
        "original_windows_per_s": round(windows / t_original, 1),
        "ours_windows_per_s": round(windows / t_ours, 1),
        "speedup": round(t_original / t_ours, 1),
    })


if __name__ == "__main__":
    main()
